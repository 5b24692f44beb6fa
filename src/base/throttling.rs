//! Request throttling by table env, as upstream's `throttling_controller`: the grammar of
//! `replica.write_throttling`, `replica.write_throttling_by_size`, `replica.read_throttling`
//! and `replica.backup_request_throttling` (`<units>*<delay|reject>*<ms>[,...]`, units with an
//! optional K or M suffix), and the per-partition controller: the table's units are divided
//! by its partition count, counted in one-second windows; past the reject units a request is
//! refused (ERR_BUSY, after the reject delay), past the delay units it is held back first.

/// Parses `<units>`: an unsigned integer, optionally ending in `K` (x1024) or `M` (x1048576).
pub fn parse_units(s: &str) -> Result<u64, String> {
    let (num, mul) = match s.strip_suffix('K') {
        Some(n) => (n, 1u64 << 10),
        None => match s.strip_suffix('M') {
            Some(n) => (n, 1u64 << 20),
            None => (s, 1),
        },
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{s}' should be an unsigned integer"));
    }
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("'{s}' result is overflow"))
}

/// One throttling item: (units, reject?, ms).
pub type ThrottleItem = (u64, bool, u64);

/// Parses the throttling grammar (`1000*delay*100,2000*reject*200`) with upstream's hints.
pub fn parse_throttling(v: &str) -> Result<Vec<ThrottleItem>, String> {
    let items: Vec<&str> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        return Err("The value shouldn't be empty".into());
    }
    let (mut delay, mut reject) = (false, false);
    let mut out = Vec::new();
    for item in items {
        let f: Vec<&str> = item.split('*').collect();
        if f.len() != 3 {
            return Err(format!(
                "The field count of '{item}' separated by '*' must be 3"
            ));
        }
        let units = parse_units(f[0])?;
        let is_reject = match f[1] {
            "delay" => false,
            "reject" => true,
            other => return Err(format!("'{other}' should be 'delay' or 'reject'")),
        };
        let ms = parse_units(f[2])?;
        let seen = if is_reject { &mut reject } else { &mut delay };
        if *seen {
            return Err(format!("duplicate '{}' config", f[1]));
        }
        *seen = true;
        out.push((units, is_reject, ms));
    }
    Ok(out)
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    Pass,
    /// Hold it back this long, then serve it (unthrottled).
    Delay(u64),
    /// Refuse it with ERR_BUSY after this long (0: at once).
    Reject(u64),
}

/// One partition's controller for one env.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Controller {
    env: Option<(String, i32)>,
    delay_units: u64,
    delay_ms: u64,
    reject_units: u64,
    reject_ms: u64,
    window_s: i64,
    used: u64,
}

impl Controller {
    /// Follows the env's value (`None`, or a value that does not parse: off) for a table of
    /// `partition_count` partitions; the window is kept when nothing changed.
    pub fn update(&mut self, value: Option<&str>, partition_count: i32) {
        let pc = partition_count.max(1);
        let Some(v) = value else {
            *self = Controller::default();
            return;
        };
        if self.env.as_ref().is_some_and(|(e, p)| e == v && *p == pc) {
            return;
        }
        let Ok(items) = parse_throttling(v) else {
            *self = Controller::default();
            return;
        };
        let per_partition = |u: u64| if u == 0 { 0 } else { u / pc as u64 + 1 };
        let mut c = Controller {
            env: Some((v.to_string(), pc)),
            ..Controller::default()
        };
        for (units, reject, ms) in items {
            if reject {
                c.reject_units = per_partition(units);
                c.reject_ms = ms;
            } else {
                c.delay_units = per_partition(units);
                c.delay_ms = ms;
            }
        }
        *self = c;
    }

    pub fn enabled(&self) -> bool {
        self.env.is_some()
    }

    /// Counts a request of `units` at `now_s`; delays are capped at half the client's timeout
    /// (when it sent one).
    pub fn control(&mut self, now_s: i64, units: u64, client_timeout_ms: i64) -> Throttle {
        if self.env.is_none() {
            return Throttle::Pass;
        }
        if now_s != self.window_s {
            self.window_s = now_s;
            self.used = 0;
        }
        let cap = |ms: u64| {
            if client_timeout_ms > 0 {
                ms.min((client_timeout_ms / 2) as u64)
            } else {
                ms
            }
        };
        self.used = self.used.saturating_add(units);
        if self.reject_units > 0 && self.used > self.reject_units {
            self.used -= units;
            return Throttle::Reject(cap(self.reject_ms));
        }
        if self.delay_units > 0 && self.used > self.delay_units {
            return Throttle::Delay(cap(self.delay_ms));
        }
        Throttle::Pass
    }
}

/// `replica.read_throttling_by_size` as upstream applies it: a token bucket of bytes read,
/// filled at the reject units (per partition) every second; a read finding it empty is
/// refused at once (ERR_BUSY), and what each read returns is taken from it afterwards. The
/// delay part of the grammar is not used (upstream's reads are never delayed by size).
#[derive(Debug, Clone, Default)]
pub struct SizeBucket {
    env: Option<(String, i32)>,
    rate: u64,
    tokens: f64,
    last_us: u64,
}

impl SizeBucket {
    /// Follows the env's value for a table of `partition_count` partitions.
    pub fn update(&mut self, value: Option<&str>, partition_count: i32) {
        let pc = partition_count.max(1) as u64;
        let Some(v) = value else {
            *self = SizeBucket::default();
            return;
        };
        if self
            .env
            .as_ref()
            .is_some_and(|(e, p)| e == v && *p as u64 == pc)
        {
            return;
        }
        let reject = parse_throttling(v)
            .ok()
            .and_then(|items| items.into_iter().find(|(_, reject, _)| *reject));
        *self = match reject {
            Some((units, _, _)) if units > 0 => {
                let rate = units / pc + 1;
                SizeBucket {
                    env: Some((v.to_string(), pc as i32)),
                    rate,
                    tokens: rate as f64,
                    last_us: 0,
                }
            }
            _ => SizeBucket::default(),
        };
    }

    pub fn enabled(&self) -> bool {
        self.env.is_some()
    }

    fn refill(&mut self, now_us: u64) {
        if self.last_us != 0 && now_us > self.last_us {
            let add = self.rate as f64 * (now_us - self.last_us) as f64 / 1e6;
            self.tokens = (self.tokens + add).min(self.rate as f64);
        }
        self.last_us = now_us;
    }

    /// Whether a read may run now.
    pub fn allow(&mut self, now_us: u64) -> bool {
        if self.env.is_none() {
            return true;
        }
        self.refill(now_us);
        self.tokens > 0.0
    }

    /// Takes the bytes a read returned.
    pub fn consume(&mut self, now_us: u64, bytes: u64) {
        if self.env.is_none() {
            return;
        }
        self.refill(now_us);
        self.tokens -= bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        assert_eq!(
            parse_throttling("100*delay*10, 2K*reject*0"),
            Ok(vec![(100, false, 10), (2048, true, 0)])
        );
        assert_eq!(
            parse_throttling(" , "),
            Err("The value shouldn't be empty".into())
        );
        assert_eq!(
            parse_throttling("100*delay"),
            Err("The field count of '100*delay' separated by '*' must be 3".into())
        );
        assert_eq!(
            parse_throttling("x*delay*1"),
            Err("'x' should be an unsigned integer".into())
        );
        assert_eq!(
            parse_throttling("1*wait*1"),
            Err("'wait' should be 'delay' or 'reject'".into())
        );
        assert_eq!(
            parse_throttling("1*delay*1,2*delay*2"),
            Err("duplicate 'delay' config".into())
        );
        assert_eq!(parse_units("3M"), Ok(3 << 20));
        assert_eq!(
            parse_units("99999999999999999999"),
            Err("'99999999999999999999' result is overflow".into())
        );
    }

    #[test]
    fn per_partition_windows() {
        let mut c = Controller::default();
        assert_eq!(c.control(1, 1, 0), Throttle::Pass);
        // 40 per second over 4 partitions: delay past 40/4+1 = 11, reject past 80/4+1 = 21
        c.update(Some("40*delay*100,80*reject*500"), 4);
        let got: Vec<Throttle> = (0..23).map(|_| c.control(7, 1, 600)).collect();
        assert!(got[..11].iter().all(|t| *t == Throttle::Pass));
        assert!(got[11..21].iter().all(|t| *t == Throttle::Delay(100)));
        // rejected ones are not counted; the delay is capped at half the client timeout
        assert_eq!(got[21], Throttle::Reject(300));
        assert_eq!(got[22], Throttle::Reject(300));
        // a new second starts a new window
        assert_eq!(c.control(8, 1, 600), Throttle::Pass);
        // an unchanged env keeps the window; removing it turns throttling off
        c.update(Some("40*delay*100,80*reject*500"), 4);
        assert_eq!(c.used, 1);
        c.update(None, 4);
        assert!(!c.enabled());
        assert_eq!(c.control(8, 1000, 0), Throttle::Pass);
        // a value that does not parse turns it off too
        c.update(Some("junk"), 4);
        assert!(!c.enabled());
    }

    #[test]
    fn read_size_bucket_rejects_once_the_bytes_are_spent() {
        let mut b = SizeBucket::default();
        assert!(b.allow(1));
        // 8 partitions sharing 8000 bytes/s: 1001 per partition; the delay part is ignored.
        b.update(Some("100*delay*10,8000*reject*100"), 8);
        assert!(b.enabled());
        let t0 = 1_000_000_000u64;
        assert!(b.allow(t0));
        b.consume(t0, 1500);
        assert!(!b.allow(t0), "the bucket is spent");
        // Half a second refills about 500 bytes: still short of the 499 owed.
        assert!(b.allow(t0 + 500_000));
        b.consume(t0 + 500_000, 2000);
        assert!(!b.allow(t0 + 600_000));
        // Delay-only values switch it off.
        b.update(Some("100*delay*10"), 8);
        assert!(!b.enabled());
        assert!(b.allow(t0));
        b.update(None, 8);
        assert!(!b.enabled());
    }
}
