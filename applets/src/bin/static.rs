//! The static, libc-free earlymod: origin starts the process, rustix talks
//! to the kernel. Multi-call: the applet is `argv[0]`'s name (`modprobe`,
//! `insmod`, `rmmod`, `lsmod`, `modinfo`) or the first argument
//! (`earlymod modprobe`).
#![no_std]
#![no_main]

extern crate alloc;

use core::ffi::CStr;
use earlymod::sys::Out;
use earlymod_core::put;

mod alloc_mmap;

#[global_allocator]
static ALLOC: alloc_mmap::MmapAlloc = alloc_mmap::MmapAlloc;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut err = Out::stderr();
    #[cfg(feature = "panic-message")]
    {
        use core::fmt::Write;
        let _ = writeln!(err, "earlymod: internal error: {info}");
    }
    // Without the message and location nothing formats the panic sites'
    // arguments, and LTO drops that code (~14 KB).
    #[cfg(not(feature = "panic-message"))]
    {
        let _ = info;
        err.bytes(b"earlymod: internal error\n");
    }
    err.flush();
    origin::program::immediate_exit(70)
}

/// Arguments kept on the stack; more go to the heap.
const MAX_ARGS: usize = 1024;

#[unsafe(no_mangle)]
unsafe fn origin_main(argc: usize, argv: *mut *mut u8, envp: *mut *mut u8) -> i32 {
    // SAFETY: the kernel passes argc valid NUL-terminated strings that live
    // as long as the process.
    let arg = |i: usize| {
        unsafe { CStr::from_ptr((*argv.add(i)).cast()) }
            .to_str()
            .unwrap_or("")
    };
    // Typical command lines stay on the stack (no heap on the load path);
    // only a huge one (thousands of names) goes to the heap.
    let mut small: heapless::Vec<&str, MAX_ARGS> = heapless::Vec::new();
    let mut big: alloc::vec::Vec<&str> = alloc::vec::Vec::new();
    let args: &mut [&str] = if argc <= MAX_ARGS {
        for i in 0..argc {
            let _ = small.push(arg(i));
        }
        &mut small
    } else {
        big.extend((0..argc).map(arg));
        &mut big
    };
    let mut env = earlymod::Env::default();
    let mut alloc_stats = false;
    let mut e = envp;
    // SAFETY: envp is a NULL-terminated array of NUL-terminated strings.
    while !e.is_null() && unsafe { !(*e).is_null() } {
        let v = unsafe { CStr::from_ptr((*e).cast()) }
            .to_str()
            .unwrap_or("");
        if let Some(o) = v.strip_prefix("MODPROBE_OPTIONS=") {
            env.modprobe_options = Some(o);
        } else if let (Some(o), None) = (v.strip_prefix("PWD="), env.pwd) {
            env.pwd = Some(o);
        }
        alloc_stats |= v == "EARLYMOD_ALLOC_STATS=1";
        e = unsafe { e.add(1) };
    }
    let code = run(args, env);
    if alloc_stats {
        put!(&mut Out::stderr(); "earlymod: ", alloc_mmap::allocations(), " heap allocations\n");
    }
    origin::program::exit(code)
}

fn run<'a>(args: &mut [&'a str], env: earlymod::Env<'a>) -> i32 {
    let argv0 = args.first().copied().unwrap_or("earlymod");
    let (applet, rest): (&str, &mut [&'a str]) = match earlymod::applet_of(argv0) {
        Some(a) => (a, args.get_mut(1..).unwrap_or(&mut [])),
        None => match args.get(1).copied() {
            Some(a) => (a, &mut args[2..]),
            None => {
                let mut err = Out::stderr();
                err.bytes(b"usage: earlymod APPLET [ARGS]   (applets:");
                for a in earlymod::APPLETS {
                    put!(&mut err; " ", a);
                }
                err.bytes(b")\n");
                return 1;
            }
        },
    };
    earlymod::dispatch(applet, rest, env).unwrap_or_else(|| {
        put!(&mut Out::stderr(); "earlymod: unknown applet '", applet, "'\n");
        1
    })
}
