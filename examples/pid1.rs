//! A custom PID 1 on earlymod's public API only: mount the API filesystems,
//! open the uevent socket, load modules-load.d, coldplug, wait for `root=`
//! (coldplugging what the uevents bring while it waits), load its
//! filesystem, mount it and switch to its `init=`.
use earlymod::boot::{self, Batch, Batching, Coldplug, klog::Klog, root, switch};
use earlymod::context::{ConfigStore, Context};
use earlymod::{
    kernel::Live,
    moddir::{self, ModDir},
};

fn main() {
    let mut log = Klog::new();
    boot::mount_api(&mut log, &mut |_, _| {});
    // Before the first scan: devices added later arrive as uevents.
    let events = boot::uevent::Uevents::open();
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let arg = |key: &str| cmdline.split_whitespace().find_map(|w| w.strip_prefix(key));
    let dir = ModDir::running();
    let mut store = ConfigStore::new();
    let ctx = Context::open(&dir, &moddir::DEFAULT_CONFIG_PATHS, &mut store, &mut |l| {
        log.line(l)
    });
    let (mut kernel, how) = (Live::new(), Batching::default());
    let mut seen = Coldplug::with_uevents(events);
    let mut show = |b: Batch| {
        for m in &b.modules {
            let how = m.error.as_deref().unwrap_or("loaded");
            println!("pid1: {} {} us: {how}", m.name, m.micros);
        }
    };
    let mut names = Vec::new();
    boot::modules_load_d(&mut names);
    show(ctx.load_batch(&names, &mut kernel, &how, &mut log));
    ctx.coldplug(&mut seen, &mut kernel, &how, &mut log, &mut show);
    let wait = root::Wait::secs(10);
    // Sleep on the socket (250 ms at most), load what came, look again
    // when a block device did.
    let found = root::wait_for(arg("root=").unwrap_or(""), wait, &mut log, &mut |log| {
        seen.wait(250);
        ctx.coldplug(&mut seen, &mut kernel, &how, log, &mut show);
        seen.take_block_change()
    });
    let why = match found {
        Ok(dev) => {
            let fs = dev.fstype.map(|t| format!("fs-{t}"));
            show(ctx.load_batch(fs.as_slice(), &mut kernel, &how, &mut log));
            let rw = cmdline.split_whitespace().any(|w| w == "rw");
            let opts = root::MountOpts {
                rw,
                ..Default::default()
            };
            match root::mount(&dev, &opts) {
                Ok(fstype) => {
                    println!("pid1: {} ({fstype}) mounted on {}", dev.dev, root::SYSROOT);
                    switch::switch_to(arg("init=").unwrap_or("/sbin/init"))
                }
                Err(e) => e,
            }
        }
        Err(e) => e,
    };
    // PID 1 never exits: say why, then wait (reaping nothing: no children).
    eprintln!("pid1: boot failed: {why}");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
