//! `sim`: runs the deterministic cluster simulation for one seed (`--seed S`, printing
//! `trace=<digest>` last) or a range (`--seeds A..B`, stopping at the first violation and
//! printing the command that replays it). Exits non-zero on any violation.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pegasus_rs::sim::{self, Bug, SimOptions};

fn usage() -> ! {
    eprintln!(
        "usage: sim (--seed S | --seeds A..B) [--inject-bug NAME] [--jobs N] [--verbose]\n\
         planted bugs: {}",
        Bug::ALL.map(|(n, _)| n).join(", ")
    );
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seed = None;
    let mut range = None;
    let mut bug = None;
    let mut jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut verbose = false;
    let mut trace_events = false;
    let mut i = 0;
    while i < args.len() {
        let val = |i: usize| args.get(i + 1).cloned().unwrap_or_else(|| usage());
        match args[i].as_str() {
            "--seed" => {
                seed = Some(val(i).parse::<u64>().unwrap_or_else(|_| usage()));
                i += 1;
            }
            "--seeds" => {
                let v = val(i);
                let (a, b) = v.split_once("..").unwrap_or_else(|| usage());
                let a = a.parse::<u64>().unwrap_or_else(|_| usage());
                let b = b.parse::<u64>().unwrap_or_else(|_| usage());
                range = Some((a, b));
                i += 1;
            }
            "--inject-bug" => {
                bug = Some(Bug::parse(&val(i)).unwrap_or_else(|| usage()));
                i += 1;
            }
            "--jobs" => {
                jobs = val(i).parse::<usize>().unwrap_or_else(|_| usage()).max(1);
                i += 1;
            }
            "--verbose" | "-v" => verbose = true,
            "--trace-events" => {
                verbose = true;
                trace_events = true;
            }
            _ => usage(),
        }
        i += 1;
    }
    let bug_arg = bug
        .map(|b| format!(" --inject-bug {}", b.name()))
        .unwrap_or_default();
    if let Some(s) = seed {
        let mut o = SimOptions::new(s);
        o.bug = bug;
        o.verbose = verbose;
        o.trace_events = trace_events;
        let out = sim::run(o);
        for l in &out.log {
            println!("{l}");
        }
        println!("seed {s}: {}", out.stats);
        let bad = out.violation.is_some();
        if let Some(v) = &out.violation {
            println!("VIOLATION at seed {s}: {v}");
        }
        println!("trace={:016x}", out.trace);
        std::process::exit(if bad { 1 } else { 0 });
    }
    let Some((a, b)) = range else { usage() };
    let next = Arc::new(AtomicU64::new(a));
    let stop = Arc::new(AtomicBool::new(false));
    let failed: Arc<Mutex<Option<(u64, String)>>> = Arc::new(Mutex::new(None));
    let done = Arc::new(AtomicU64::new(0));
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..jobs)
        .map(|_| {
            let (next, stop, failed, done) =
                (next.clone(), stop.clone(), failed.clone(), done.clone());
            std::thread::spawn(move || loop {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let s = next.fetch_add(1, Ordering::SeqCst);
                if s >= b {
                    return;
                }
                let mut o = SimOptions::new(s);
                o.bug = bug;
                let out = sim::run(o);
                done.fetch_add(1, Ordering::SeqCst);
                if let Some(v) = out.violation {
                    let mut f = failed.lock().unwrap_or_else(|p| p.into_inner());
                    if f.as_ref().is_none_or(|(fs, _)| s < *fs) {
                        *f = Some((s, v));
                    }
                    stop.store(true, Ordering::SeqCst);
                    return;
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let n = done.load(Ordering::SeqCst);
    let secs = started.elapsed().as_secs_f64();
    let f = failed.lock().unwrap_or_else(|p| p.into_inner()).take();
    match f {
        Some((s, v)) => {
            println!("{n} seeds run in {secs:.1}s{bug_arg}");
            println!("VIOLATION at seed {s}: {v}");
            println!("replay: sim --seed {s}{bug_arg} --verbose");
            std::process::exit(1);
        }
        None => {
            println!("seeds {a}..{b}: {n} runs clean in {secs:.1}s{bug_arg}");
        }
    }
}
