// DI tokens private to the desktop module.
import type { InjectionToken } from 'tsyringe';
import type { SettingsHolder } from '../../kernel/module/settings-holder.js';
import type { desktopSettings } from './contract.js';

export const DesktopSettingsToken: InjectionToken<SettingsHolder<typeof desktopSettings>> = Symbol('desktop.settings');
