//! The load shapes: who joins which conference, who publishes, what each should receive, and
//! the copies per source a plain forwarder makes for the same shape (the baseline).

/// Simulcast layers, lowest first. The top one (`f`) is what unconstrained receivers get.
pub const LAYER_RIDS: [&str; 3] = ["q", "h", "f"];

/// What each publisher sends: VP8 simulcast q/h/f at `fps` plus Opus at 50 packets/s.
#[derive(Debug, Clone, Copy)]
pub struct Media {
    /// Top layer bit rate; h is a fifth of it and q 8% (200/500/2500 kbps by default).
    pub top_bps: u64,
    pub fps: u64,
}

impl Media {
    pub fn layer_bps(&self, i: usize) -> u64 {
        match i {
            0 => self.top_bps * 2 / 25,
            1 => self.top_bps / 5,
            _ => self.top_bps,
        }
    }

    /// Bytes per frame of layer `i` (at least a VP8 keyframe header).
    pub fn frame_bytes(&self, i: usize) -> usize {
        ((self.layer_bps(i) / 8 / self.fps) as usize).max(16)
    }

    pub fn describe(&self) -> String {
        let k = |i| self.layer_bps(i) as f64 / 1000.0;
        format!("VP8 q/h/f {:.0}/{:.0}/{:.0} kbps at {} fps + Opus 50 pkt/s", k(0), k(1), k(2), self.fps)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Fanout,
    Rooms,
    LastN,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "fanout" => Some(Kind::Fanout),
            "rooms" => Some(Kind::Rooms),
            "lastn" | "last-n" => Some(Kind::LastN),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Fanout => "fanout",
            Kind::Rooms => "rooms",
            Kind::LastN => "lastn",
        }
    }

    /// Sizes run when none are given: N subscribers, R rooms, K participants.
    pub fn default_sizes(self) -> Vec<usize> {
        match self {
            Kind::Fanout => vec![1, 10, 25, 50, 100, 250],
            Kind::Rooms => vec![50],
            Kind::LastN => vec![50],
        }
    }

    /// Publisher media when `--video-kbps`/`--fps` are not given: the fan-out keeps the
    /// original 2.5 Mbps at 30 fps; rooms and last-N, with every participant publishing, use
    /// the load generator's 300 kbps top layer at 15 fps so the load fits 2 cores.
    pub fn default_media(self) -> Media {
        match self {
            Kind::Fanout => Media { top_bps: 2_500_000, fps: 30 },
            Kind::Rooms | Kind::LastN => Media { top_bps: 300_000, fps: 15 },
        }
    }
}

/// One client of the bench.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    pub name: String,
    pub conference: String,
    pub publish: bool,
    /// Video sources it should receive (it counts as ready once each has sent 10 frames).
    pub receive_videos: usize,
    /// `receiver_constraints.last_n` to send for it, if any.
    pub last_n: Option<i32>,
}

/// Bridge limits the shapes depend on (its `--audio-slots`/`--video-slots`).
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    pub audio: usize,
    pub video: usize,
}

pub struct Scenario {
    pub kind: Kind,
    /// `N=10`, `50×4`, `K=50 last-n 9`.
    pub size: String,
    pub peers: Vec<PeerSpec>,
    /// Per publishing peer (in `peers` order): copies of its top layer and of its audio the
    /// bridge should send (and the baseline sends).
    pub video_copies: Vec<u64>,
    pub audio_copies: Vec<u64>,
    pub media: Media,
}

/// Copies per source when each of `k` participants receives `c` of the other `k − 1`'s
/// streams: c·k copies in all (which sources they are does not matter to a forwarder's cost).
fn spread(k: usize, c: usize) -> Vec<u64> {
    let c = c.min(k.saturating_sub(1));
    let mut v = vec![0u64; k];
    for x in v.iter_mut().take(c) {
        *x = (k - 1) as u64;
    }
    if c < k && c > 0 {
        v[c] = c as u64;
    }
    v
}

impl Scenario {
    pub fn fanout(n: usize, media: Media) -> Scenario {
        let mut peers = vec![PeerSpec {
            name: "pub".into(),
            conference: "bench".into(),
            publish: true,
            receive_videos: 0,
            last_n: None,
        }];
        for i in 0..n {
            peers.push(PeerSpec {
                name: format!("sub{i}"),
                conference: "bench".into(),
                publish: false,
                receive_videos: 1,
                last_n: None,
            });
        }
        Scenario {
            kind: Kind::Fanout,
            size: format!("N={n}"),
            peers,
            video_copies: vec![n as u64],
            audio_copies: vec![n as u64],
            media,
        }
    }

    /// `r` rooms of `p` participants, each publishing and receiving the other `p − 1`.
    pub fn rooms(r: usize, p: usize, media: Media, slots: Slots) -> Scenario {
        let mut peers = Vec::new();
        let (mut video_copies, mut audio_copies) = (Vec::new(), Vec::new());
        let videos = (p - 1).min(slots.video);
        for room in 0..r {
            for j in 0..p {
                peers.push(PeerSpec {
                    name: format!("r{room}p{j}"),
                    conference: format!("room{room}"),
                    publish: true,
                    receive_videos: videos,
                    last_n: None,
                });
            }
            video_copies.extend(spread(p, videos));
            audio_copies.extend(spread(p, slots.audio));
        }
        Scenario { kind: Kind::Rooms, size: format!("{r}×{p}"), peers, video_copies, audio_copies, media }
    }

    /// One room of `k` participants, all publishing, each asking for `last_n` videos.
    pub fn lastn(k: usize, last_n: i32, media: Media, slots: Slots) -> Scenario {
        let want = if last_n < 0 { k } else { last_n as usize };
        let videos = want.min(k - 1).min(slots.video);
        let peers = (0..k)
            .map(|j| PeerSpec {
                name: format!("p{j}"),
                conference: "lastn".into(),
                publish: true,
                receive_videos: videos,
                last_n: Some(last_n),
            })
            .collect();
        Scenario {
            kind: Kind::LastN,
            size: format!("K={k} last-n {last_n}"),
            peers,
            video_copies: spread(k, videos),
            audio_copies: spread(k, slots.audio),
            media,
        }
    }

    pub fn sources(&self) -> usize {
        self.video_copies.len()
    }
}
