// Hooks for the browser tests and the benchmark: read-only views plus the page's own handlers.
// Kept out of the production modules so that none of them carries test code.
import { layers } from "./layers/index.js";
import { markers, map, subplotMap, tooltipTarget } from "./map.js";
import { state } from "./state.js";

export function installDebugHooks(app) {
  window.mobility = {
    state,
    map,
    app,
    handleMessage: (message) => app.live?.handle(message),
    markers,
    layers,
    subplotMap,
    tooltipTarget,
    ready: false,
  };
}
