// The redraw loop. Deltas are coalesced into one redraw per animation frame, and a redraw that
// took T ms is followed by at least T ms without one: on a slow machine the map updates less
// often rather than falling behind with every frame spent redrawing.
import { ALL, state, takeDirty } from "./state.js";

export const scheduler = {
  renders: 0,
  busy: false, // a redraw is under way (dirty state already taken, not drawn yet)
  renderMs: [], // the last redraw durations, for the benchmark
  firstRenderAt: null,
  hold: null, // () => true while redraws should wait (main.js: under the first paint); then requestRender()
};

let drawer = null; // ({topics, changed, all}) => Promise, set by the map once it exists
let framePending = false;
let rendering = false;
let renderAgain = false;
let notBefore = 0;

export function setDrawer(fn) {
  drawer = fn;
}

export function requestRender() {
  if (framePending || !drawer) return;
  framePending = true;
  const wait = notBefore - performance.now();
  if (wait > 0) setTimeout(() => requestAnimationFrame(render), wait);
  else requestAnimationFrame(render);
}

export async function render() {
  framePending = false;
  if (scheduler.hold?.()) return; // the dirty state waits for the next requestRender()
  if (rendering) {
    renderAgain = true;
    return;
  }
  const { topics, changed } = takeDirty();
  if (!topics.size) return;
  rendering = true;
  scheduler.busy = true;
  const started = performance.now();
  try {
    const drewParking = await drawer({ topics, changed, all: topics.has("all"), ALL });
    const took = performance.now() - started;
    scheduler.renders += 1;
    scheduler.renderMs.push(took);
    if (scheduler.renderMs.length > 500) scheduler.renderMs.shift();
    notBefore = performance.now() + took;
    if (scheduler.firstRenderAt == null && drewParking) scheduler.firstRenderAt = performance.now();
  } finally {
    rendering = false;
    scheduler.busy = false;
  }
  if (renderAgain || state.dirty.size) {
    renderAgain = false;
    requestRender();
  }
}
