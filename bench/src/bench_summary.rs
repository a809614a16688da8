//! `make bench` ends here: the one table of every benchmark's headline figure beside the
//! peer or limit measured in the same run, read from the rows the benches recorded in the
//! file named by `RESTATE_BENCH_SUMMARY`, with the machine they ran on.
//!
//!   bench-summary [FILE]        (default: $RESTATE_BENCH_SUMMARY)

use std::process::ExitCode;

use restate_bench::{parse_summary, summary_table, SUMMARY_ENV};

/// "model name" of the first CPU, the number of CPUs and the memory, from /proc.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_owned()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!("{cpus} CPUs ({model}), {memory_gib:.0} GiB")
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1).or_else(|| std::env::var(SUMMARY_ENV).ok()) else {
        eprintln!("bench-summary: name the rows file as the first argument or in {SUMMARY_ENV}");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("bench-summary: cannot read {path}: {e} (did the benches run with {SUMMARY_ENV}={path}?)");
            return ExitCode::FAILURE;
        }
    };
    let rows = match parse_summary(&text) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("bench-summary: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("\n## Summary: this project beside its peers, same run\n");
    println!("Machine: {}\n", machine());
    print!("{}", summary_table(&rows));
    ExitCode::SUCCESS
}
