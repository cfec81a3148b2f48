// ICE outcome reports (issue 15): once per peer connection made for a `media` message, tell
// signaling whether it connected, with the type of the selected candidate pair's local candidate
// (`relay`: this client goes through TURN), or failed: ICE failed, or no connection within
// TIMEOUT_MS. Signaling counts the reports per bridge; the operator turns them into the
// BridgePool's IceFailing and RelayShareHigh conditions. A connection closed first (replaced
// on a migration, or we left) is not reported.
export const TIMEOUT_MS = 30000; // about when browsers themselves give up on ICE
const TYPES = ['host', 'srflx', 'prflx', 'relay'];

// The selected pair's local candidate type in a getStats() report, or null.
export function selectedLocalType(report) {
  let pair = null;
  report.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId) || pair; });
  if (!pair) report.forEach((s) => { if (!pair && s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
  const type = pair && report.get(pair.localCandidateId)?.candidateType;
  return TYPES.includes(type) ? type : null;
}

// A TURN relay's `icecandidateerror` code as the report names it, or null (not a TURN error).
export function turnError(url, code) {
  if (!/^turns?:/.test(url || '')) return null;
  if (code === 401 || code === 438) return 'auth'; // the credentials signaling minted
  if (code === 701) return 'unreachable'; // no answer from the relay
  return code >= 300 && code < 700 ? 'refused' : null;
}

// Until ICE gathering is complete (every relay allocated or refused), at most `ms`.
function gathered(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === 'complete') { pc.removeEventListener('icegatheringstatechange', done); resolve(); } };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, ms);
  });
}

// Watch `pc` (made for bridge `bridge`) and call `report(bridge, outcome, candidate,
// turnError)` once, after gathering has ended so that a relay's refusal is in it too.
export function watchIce(pc, bridge, report) {
  let done = false;
  let turn = null; // the first TURN error
  const onError = (e) => { turn = turn || turnError(e.url, e.errorCode); };
  pc.addEventListener('icecandidateerror', onError);
  const finish = async (outcome) => {
    if (done || pc.connectionState === 'closed') return;
    done = true;
    clearTimeout(timer);
    pc.removeEventListener('connectionstatechange', onState);
    await gathered(pc, 10000);
    pc.removeEventListener('icecandidateerror', onError);
    if (pc.connectionState === 'closed') return;
    let candidate = null;
    // The selected pair is in the stats once connected; a few tries in case it lags.
    for (let i = 0; outcome === 'connected' && !candidate && i < 5; i++) {
      if (i) await new Promise((r) => setTimeout(r, 200));
      candidate = selectedLocalType(await pc.getStats().catch(() => new Map()));
    }
    report(bridge, outcome, candidate, turn);
  };
  const onState = () => {
    if (pc.connectionState === 'connected') finish('connected');
    else if (pc.connectionState === 'failed') finish('failed');
  };
  const timer = setTimeout(() => finish('failed'), TIMEOUT_MS);
  pc.addEventListener('connectionstatechange', onState);
}
