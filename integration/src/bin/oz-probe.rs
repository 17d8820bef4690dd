//! oz-probe: tries sandbox escapes for real and reports each one.
//!
//! ```text
//! oz-probe all|NAME[,NAME...] [--json] [--KEY VALUE]...   run probes (targets given as --KEY VALUE)
//! oz-probe list                                          print the probe names
//! oz-probe syscalls                                      call each default-blacklist syscall
//! oz-probe call NAME...                                  call simple syscalls (getppid, sysinfo, uname)
//! oz-probe x32-kill                                      make an x32 syscall in this process
//! oz-probe euid                                          print the effective uid
//! oz-probe alloc MB                                      allocate and touch MB MiB of memory
//! ```

use oz_integration::probes::{self, syscalls, Ctx, Line};
use std::collections::BTreeMap;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("usage: oz-probe all|NAME|list|syscalls|call NAME...|x32-kill|euid [--json] [--KEY VALUE]...");
        return ExitCode::from(2);
    };
    match cmd.as_str() {
        "list" => {
            for p in probes::all() {
                println!("{}", p.name);
            }
            ExitCode::SUCCESS
        }
        "syscalls" => {
            for (name, call) in syscalls::BLACKLIST {
                println!("SYSCALL {name} {}", syscalls::result_text(*call));
            }
            ExitCode::SUCCESS
        }
        "call" => {
            for name in &args[1..] {
                match syscalls::SIMPLE.iter().find(|(n, _)| n == name) {
                    Some((_, call)) => println!("SYSCALL {name} {}", syscalls::result_text(*call)),
                    None => println!("SYSCALL {name} UNKNOWN"),
                }
            }
            ExitCode::SUCCESS
        }
        "x32-kill" => {
            // SAFETY: getpid through the x32 syscall bit; the sandbox must kill us here.
            let r = unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) };
            println!("x32 getpid returned {r}");
            ExitCode::SUCCESS
        }
        "euid" => {
            // SAFETY: geteuid has no arguments.
            println!("{}", unsafe { libc::geteuid() });
            ExitCode::SUCCESS
        }
        "alloc" => alloc(args.get(1).map(String::as_str)),
        selection => run_probes(selection, &args[1..]),
    }
}

/// Allocates `mb` MiB and writes to every page (so it is really resident), then reports.
fn alloc(mb: Option<&str>) -> ExitCode {
    let Some(mb) = mb.and_then(|m| m.parse::<usize>().ok()) else {
        eprintln!("oz-probe: alloc needs a size in MiB");
        return ExitCode::from(2);
    };
    let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(mb);
    for i in 0..mb {
        let mut chunk = vec![0u8; 1 << 20];
        for page in chunk.chunks_mut(4096) {
            page[0] = (i as u8) | 1;
        }
        chunks.push(chunk);
    }
    let sum: usize = chunks.iter().map(|c| usize::from(c[0])).sum();
    println!("ALLOCATED {mb} MiB ({sum})");
    ExitCode::SUCCESS
}

fn run_probes(selection: &str, rest: &[String]) -> ExitCode {
    let mut json = false;
    let mut values = BTreeMap::new();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        if a == "--json" {
            json = true;
            continue;
        }
        let Some(key) = a.strip_prefix("--") else {
            eprintln!("oz-probe: unexpected argument {a:?}");
            return ExitCode::from(2);
        };
        let Some(value) = it.next() else {
            eprintln!("oz-probe: --{key} needs a value");
            return ExitCode::from(2);
        };
        values.insert(key.to_string(), value.clone());
    }
    let ctx = Ctx::new(values);
    let all = probes::all();
    let wanted: Vec<&str> = selection.split(',').collect();
    let chosen: Vec<_> = all.iter().filter(|p| selection == "all" || wanted.contains(&p.name)).collect();
    if chosen.is_empty() {
        eprintln!("oz-probe: no probe named {selection:?} (see `oz-probe list`)");
        return ExitCode::from(2);
    }
    let mut results = Vec::new();
    for p in chosen {
        let outcome = (p.run)(&ctx);
        if json {
            results.push(serde_json::json!({"probe": p.name, "result": outcome.tag(), "detail": outcome.detail()}));
        } else {
            println!("{}", Line(p.name, &outcome));
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(results));
    }
    ExitCode::SUCCESS
}
