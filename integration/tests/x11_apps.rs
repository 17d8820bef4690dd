//! The shipped profiles of real desktop programs (`profiles/cells.d/`), launched through the real
//! daemon as the test user with a private Xvfb standing in for the desktop: each shows its
//! window there (found with xdotool, titled as the program titles it), the screenshot is not
//! blank, and a document argument in the user's home is what the program opened.

mod common_daemon;
mod common_x11;

use common_daemon::{user_a, Daemon, TestUser};
use common_x11::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// A shipped profile, as installed in `/var/lib/oz/cells.d/`.
fn shipped_profile(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../profiles/cells.d/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn xdotool(display: &str, args: &[&str]) -> String {
    let out = Command::new("xdotool")
        .args(args)
        .env_clear()
        .env("DISPLAY", display)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("xdotool (scripts/deps.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The visible windows on `display` whose name matches the regular expression `pattern`
/// (xdotool): their ids and names.
fn visible_windows(display: &str, pattern: &str) -> Vec<(String, String)> {
    xdotool(display, &["search", "--onlyvisible", "--name", pattern])
        .lines()
        .map(|id| (id.trim().to_string(), xdotool(display, &["getwindowname", id.trim()]).trim().to_string()))
        .collect()
}

/// How many colours the part of screenshot `png` under window `id` has (1: nothing painted).
fn window_colours(display: &str, png: &std::path::Path, id: &str) -> u64 {
    let geo = xdotool(display, &["getwindowgeometry", "--shell", id]);
    let get =
        |k: &str| geo.lines().find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_string)).unwrap_or_default();
    let crop = format!("{}x{}+{}+{}", get("WIDTH"), get("HEIGHT"), get("X"), get("Y"));
    let out = Command::new("/usr/bin/convert")
        .args([png.to_str().unwrap(), "-crop", &crop, "+repage", "-format", "%k", "info:"])
        .output()
        .expect("convert (imagemagick)");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

/// Launch shipped profile `name` with the arguments `prepare` returns (it runs under the
/// test lock, and may make files in the user's home), wait for a visible window whose name
/// contains `title`, take a screenshot, kill the sandbox; returns the window names.
fn shows_window(name: &str, prepare: impl FnOnce(&TestUser) -> Vec<String>, title: &str) -> Vec<String> {
    let x = Xvfb::start();
    let d = Daemon::start_with(&[shipped_profile(name)], serde_json::json!({"log_xpra": true}));
    let a = user_a();
    let args = prepare(&a);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let t = Instant::now();
    let (id, took) = launch_x(&d, &a, &x.display(), name, &args);
    let mut windows = Vec::new();
    let shown = common_daemon::wait_until(Duration::from_secs(30), || {
        windows = visible_windows(&x.display(), title);
        !windows.is_empty()
    });
    let names: Vec<String> = windows.iter().map(|(_, n)| n.clone()).collect();
    let log = || d.oz(&a, &["logs", "--sandbox", &id.to_string()]).stdout;
    assert!(
        shown,
        "{name}: no visible window named *{title}* on {}:\n{}\nlog:\n{}",
        x.display(),
        window_tree(&x.display(), None),
        log()
    );
    eprintln!("x11 {name}: oz launch {took:?}, window {:?} after the launch began: {names:?}", t.elapsed());
    std::thread::sleep(Duration::from_millis(2000));
    let (png, _) = screenshot(&x.display(), &format!("app-{name}"));
    let colours = window_colours(&x.display(), &png, &windows[0].0);
    assert!(colours > 1, "{name}: its window in {} is blank ({colours} colours); log:\n{}", png.display(), log());
    d.oz(&a, &["kill", &id.to_string()]).assert_ok("oz kill", &d);
    d.wait_gone(id, Duration::from_secs(10)).unwrap();
    for f in &args {
        if f.contains("/ozt-") {
            let _ = std::fs::remove_file(f);
        }
    }
    d.finish();
    names
}

/// A one-page PDF titled `title` (minimal, offsets computed), written as the user.
fn write_pdf(a: &TestUser, file: &str, title: &str) -> String {
    let script = format!(
        r#"
import os
objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        None,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Title ({title}) >>"]
text = b"BT /F1 24 Tf 40 100 Td (oz sandbox test) Tj ET"
objs[3] = b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream"
out = b"%PDF-1.4\n"
offsets = []
for i, o in enumerate(objs):
    offsets.append(len(out))
    out += b"%d 0 obj\n" % (i + 1) + o + b"\nendobj\n"
xref = len(out)
out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
for off in offsets:
    out += b"%010d 00000 n \n" % off
out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
path = os.path.expanduser("~/{file}")
open(path, "wb").write(out)
print(path)
"#
    );
    let out = a.command("/usr/bin/python3").args(["-c", &script]).output().expect("python3");
    assert!(out.status.success(), "write the pdf: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn shipped_xterm_shows_its_window() {
    let names = shows_window("xterm", |_| Vec::new(), "xterm");
    assert!(names.iter().any(|n| n.starts_with("[oz] ")), "the window is the sandbox's (Xpra's title): {names:?}");
}

/// evince opens the PDF given as its argument (`allow_files`): its window is titled by the
/// document.
#[test]
fn shipped_evince_opens_a_pdf_argument() {
    let pdf = |a: &TestUser| vec![write_pdf(a, "ozt-evince.pdf", "Ozt Sandboxed Document")];
    // Evince titles the window by the document's title, or by its file name.
    let names = shows_window("evince", pdf, "Ozt Sandboxed Document|ozt-evince");
    assert!(names.iter().any(|n| n.starts_with("[oz] ")), "{names:?}");
}

/// eog opens the image given as its argument: its window is titled by the file name (eog
/// titles an empty viewer "Image Viewer" and shows "No images found").
#[test]
fn shipped_eog_opens_an_image_argument() {
    let script = "from PIL import Image, ImageDraw\nimport os\np = os.path.expanduser('~/ozt-eog.png')\n\
                  im = Image.new('RGB', (320, 240), (30, 90, 200))\nImageDraw.Draw(im).ellipse((60, 40, 260, 200), fill=(240, 200, 20))\n\
                  im.save(p)\nprint(p)";
    let png = |a: &TestUser| {
        let out = a.command("/usr/bin/python3").args(["-c", script]).output().expect("python3");
        assert!(out.status.success(), "write the png: {}", String::from_utf8_lossy(&out.stderr));
        vec![String::from_utf8_lossy(&out.stdout).trim().to_string()]
    };
    let names = shows_window("eog", png, "ozt-eog.png");
    assert!(names.iter().all(|n| !n.contains("Image Viewer")), "eog found no image: {names:?}");
}
