// The model-based test kit for every machine: fakes, harness, path replay. Import from here.

export { type EventWithPayload, eventsWithPayloads, type PayloadSource } from "./events.js";
export { createFakeActors, type FakeActors, type FakeCall, type FakeCallStatus } from "./fake-actors.js";
export {
  createHarness,
  flushMicrotasks,
  type Harness,
  type HarnessOptions,
  type PendingTimer,
  type RecordedAction,
} from "./harness.js";
export { getTransitionPaths, graphSize, randomWalks } from "./paths.js";
export {
  type AnyPath,
  applyStep,
  describePath,
  type ReplayOptions,
  type ReplayReport,
  replayEach,
  replayPath,
  type StepInfo,
  TimerOrderError,
} from "./replay.js";
export { type PendingTimeout, TestClock } from "./test-clock.js";
