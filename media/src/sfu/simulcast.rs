//! Simulcast layer choice: which layer of a source a receiver should get.
//!
//! Pure functions; the router applies the choice only on keyframes of the new layer.

/// What the bridge knows about one simulcast layer of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    /// Frame height (from VP8 keyframes, else assumed from the layer's rank).
    pub height: u32,
    /// Measured bitrate over the last second.
    pub bitrate_bps: u64,
    /// Packets seen recently (a layer the sender stopped is not selectable).
    pub active: bool,
}

/// Assumed height of layer `index` of `count` when no keyframe told us: the top layer is
/// 720p and each lower one halves it (Chrome's default scaleResolutionDownBy 4/2/1).
pub fn assumed_height(index: usize, count: usize) -> u32 {
    let shift = count.saturating_sub(1).saturating_sub(index).min(8);
    720 >> shift
}

/// Order of well-known RID names from lowest to highest quality.
pub fn rid_rank(rid: &str) -> Option<u8> {
    match rid {
        "q" | "l" | "lo" | "low" | "0" => Some(0),
        "h" | "m" | "mid" | "1" => Some(1),
        "f" | "hi" | "high" | "2" => Some(2),
        _ => None,
    }
}

/// The best layer (index into `layers`, ordered low→high) that fits `max_height` and
/// `budget_bps`. `max_height == 0` means "no video". When nothing fits the budget the lowest
/// active layer is still chosen: a frozen image is worse than a low one, and BWE recovers.
pub fn select_layer(layers: &[LayerInfo], max_height: u32, budget_bps: Option<u64>) -> Option<usize> {
    if max_height == 0 {
        return None;
    }
    let lowest = layers.iter().position(|l| l.active)?;
    let mut best = None;
    for (i, l) in layers.iter().enumerate() {
        if !l.active || l.height > max_height {
            continue;
        }
        if let Some(b) = budget_bps
            && l.bitrate_bps > b
        {
            continue;
        }
        best = Some(i);
    }
    Some(best.unwrap_or(lowest))
}

/// Split a receiver's bandwidth estimate over the video sources it gets, in priority order:
/// each source first gets its lowest layer, then upgrades go to the highest-priority source
/// first. Returns the chosen layer per source.
pub fn allocate(sources: &[(&[LayerInfo], u32)], estimate_bps: Option<u64>) -> Vec<Option<usize>> {
    let Some(mut left) = estimate_bps else {
        return sources.iter().map(|(l, h)| select_layer(l, *h, None)).collect();
    };
    // Pass 1: the minimum for everyone.
    let mut chosen: Vec<Option<usize>> = sources
        .iter()
        .map(|(layers, h)| {
            let c = select_layer(layers, *h, Some(0));
            if let Some(i) = c {
                left = left.saturating_sub(layers[i].bitrate_bps);
            }
            c
        })
        .collect();
    // Pass 2: upgrades in priority order.
    for (k, (layers, h)) in sources.iter().enumerate() {
        let Some(cur) = chosen[k] else { continue };
        let spent = layers[cur].bitrate_bps;
        if let Some(better) = select_layer(layers, *h, Some(left + spent))
            && better > cur
        {
            left = (left + spent).saturating_sub(layers[better].bitrate_bps);
            chosen[k] = Some(better);
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Vec<LayerInfo> {
        vec![
            LayerInfo { height: 180, bitrate_bps: 200_000, active: true },
            LayerInfo { height: 360, bitrate_bps: 500_000, active: true },
            LayerInfo { height: 720, bitrate_bps: 2_500_000, active: true },
        ]
    }

    #[test]
    fn height_constraint() {
        let l = three();
        assert_eq!(select_layer(&l, 2160, None), Some(2));
        assert_eq!(select_layer(&l, 720, None), Some(2));
        assert_eq!(select_layer(&l, 500, None), Some(1));
        assert_eq!(select_layer(&l, 180, None), Some(0));
        // Below the lowest layer: still the lowest (the receiver asked for video).
        assert_eq!(select_layer(&l, 90, None), Some(0));
        assert_eq!(select_layer(&l, 0, None), None);
    }

    #[test]
    fn bandwidth_and_inactive_layers() {
        let mut l = three();
        assert_eq!(select_layer(&l, 720, Some(1_000_000)), Some(1));
        assert_eq!(select_layer(&l, 720, Some(10)), Some(0));
        l[2].active = false;
        assert_eq!(select_layer(&l, 720, None), Some(1));
        l[0].active = false;
        l[1].active = false;
        assert_eq!(select_layer(&l, 720, None), None);
    }

    #[test]
    fn allocation_prefers_first_source() {
        let l = three();
        let got = allocate(&[(&l, 720), (&l, 720)], Some(3_300_000));
        assert_eq!(got, vec![Some(2), Some(1)]);
        let got = allocate(&[(&l, 720), (&l, 720)], Some(100_000));
        assert_eq!(got, vec![Some(0), Some(0)]);
        let got = allocate(&[(&l, 720), (&l, 360)], None);
        assert_eq!(got, vec![Some(2), Some(1)]);
    }

    #[test]
    fn ranks_and_heights() {
        assert!(rid_rank("q") < rid_rank("h"));
        assert!(rid_rank("h") < rid_rank("f"));
        assert_eq!(assumed_height(0, 3), 180);
        assert_eq!(assumed_height(2, 3), 720);
        assert_eq!(assumed_height(0, 1), 720);
    }
}
