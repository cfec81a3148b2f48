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

// Watch `pc` (made for bridge `bridge`) and call `report(bridge, outcome, candidate)` once.
export function watchIce(pc, bridge, report) {
  let done = false;
  const finish = async (outcome) => {
    if (done || pc.connectionState === 'closed') return;
    done = true;
    clearTimeout(timer);
    pc.removeEventListener('connectionstatechange', onState);
    let candidate = null;
    // The selected pair is in the stats once connected; a few tries in case it lags.
    for (let i = 0; outcome === 'connected' && !candidate && i < 5; i++) {
      if (i) await new Promise((r) => setTimeout(r, 200));
      candidate = selectedLocalType(await pc.getStats().catch(() => new Map()));
    }
    report(bridge, outcome, candidate);
  };
  const onState = () => {
    if (pc.connectionState === 'connected') finish('connected');
    else if (pc.connectionState === 'failed') finish('failed');
  };
  const timer = setTimeout(() => finish('failed'), TIMEOUT_MS);
  pc.addEventListener('connectionstatechange', onState);
}
