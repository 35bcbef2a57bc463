// The documents module's runtime settings, shared by the operations and the pipeline.
import { inject, injectable } from 'tsyringe';
import type { Logger } from 'pino';
import type { Port } from '../../kernel/contract/define.js';
import { ModuleLogger } from '../../kernel/module/tokens.js';
import { SettingsHolder } from '../../kernel/module/settings-holder.js';
import { configContract } from '../config/contract.js';
import { documentsContract, documentsSettings } from './contract.js';

@injectable()
export class DocumentsSettingsHolder extends SettingsHolder<typeof documentsSettings> {
  constructor(@inject(ModuleLogger) logger: Logger, @inject(configContract.token) config: Port<typeof configContract>) {
    super(documentsSettings, async () => (await config.getModuleSettings({ module: documentsContract.id })).settings, logger);
  }
}
