// DI tokens private to the browser module.
import type { InjectionToken } from 'tsyringe';
import type { SettingsHolder } from '../../kernel/module/settings-holder.js';
import type { BrowserEngine } from './browser-engine.js';
import type { browserSettings } from './contract.js';

export const BrowserEngineToken: InjectionToken<BrowserEngine> = Symbol('browser.engine');
export const BrowserSettingsToken: InjectionToken<SettingsHolder<typeof browserSettings>> = Symbol('browser.settings');
