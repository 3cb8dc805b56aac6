/**
 * What the event stream and the dashboard add to the app, in one place so app.module.ts only spreads these
 * lists. Every role serves them: events come through Redis from whichever replica saved the record. The
 * publisher and the evented repositories are bound in CoreModule (the engine saves through them).
 */
import type { Provider, Type } from '@nestjs/common';
import { EventHub } from './event-hub.js';
import { EventsController } from './events.controller.js';
import { UiController } from './ui.controller.js';

export const eventControllers: Type[] = [EventsController, UiController];
export const eventProviders: Provider[] = [EventHub];
