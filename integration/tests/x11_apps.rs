//! Real desktop programs under their shipped profiles (`profiles/cells.d/`) and the corpus's,
//! launched through the real daemon as the test user with a private Xvfb standing in for the
//! desktop: each shows its window there within 15 s (found with xdotool, titled as the program
//! titles it), its part of the screenshot is painted, and a document argument in the user's home
//! is what the window shows (its title, and a colour only the document has).

mod common_daemon;
mod common_x11;

use common_daemon::{user_a, Daemon, TestUser};
use common_x11::*;
use std::path::Path;
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

/// `WIDTHxHEIGHT+X+Y` of window `id` (xdotool).
fn window_crop(display: &str, id: &str) -> String {
    let geo = xdotool(display, &["getwindowgeometry", "--shell", id]);
    let get =
        |k: &str| geo.lines().find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_string)).unwrap_or_default();
    format!("{}x{}+{}+{}", get("WIDTH"), get("HEIGHT"), get("X"), get("Y"))
}

/// How many colours the part `crop` of screenshot `png` has (1: nothing painted).
fn colours_in(png: &Path, crop: &str) -> u64 {
    let out = Command::new("/usr/bin/convert")
        .args([png.to_str().unwrap(), "-crop", crop, "+repage", "-format", "%k", "info:"])
        .output()
        .expect("convert (imagemagick)");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

/// How many pixels of the part `crop` of screenshot `png` are within 12 of `rgb` on every
/// channel (python3-pil, which Xpra needs).
fn pixels_near(png: &Path, crop: &str, (r, g, b): (u8, u8, u8)) -> u64 {
    let script = format!(
        "from PIL import Image\nimport re\nw, h, x, y = map(int, re.match(r'(\\d+)x(\\d+)\\+(-?\\d+)\\+(-?\\d+)', '{crop}').groups())\n\
         im = Image.open('{}').convert('RGB').crop((x, y, x + w, y + h))\n\
         print(sum(1 for p in im.getdata() if abs(p[0] - {r}) <= 12 and abs(p[1] - {g}) <= 12 and abs(p[2] - {b}) <= 12))",
        png.display()
    );
    let out = Command::new("/usr/bin/python3").args(["-c", &script]).output().expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

/// What a launch must show: a window whose name contains `title`, and (when given) at least
/// 500 pixels of the colour only the document has.
struct Expect {
    title: &'static str,
    document_colour: Option<(u8, u8, u8)>,
}

/// Launch `profile` with the arguments `prepare` returns (it runs under the test lock, and may
/// make files in the user's home), wait up to 15 s for a visible window whose name contains
/// `expect.title`, check what it shows on a screenshot, kill the sandbox; returns the window
/// names.
fn shows_window(
    profile: serde_json::Value,
    prepare: impl FnOnce(&TestUser) -> Vec<String>,
    expect: Expect,
) -> Vec<String> {
    let name = profile["name"].as_str().expect("profile name").to_string();
    let x = Xvfb::start();
    let d = Daemon::start_with(&[profile], serde_json::json!({"log_xpra": true}));
    let a = user_a();
    let args = prepare(&a);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let t = Instant::now();
    let (id, took) = launch_x(&d, &a, &x.display(), &name, &args);
    let mut windows = Vec::new();
    let shown = common_daemon::wait_until(Duration::from_secs(15).saturating_sub(t.elapsed()), || {
        windows = visible_windows(&x.display(), expect.title);
        !windows.is_empty()
    });
    let window_after = t.elapsed();
    let names: Vec<String> = windows.iter().map(|(_, n)| n.clone()).collect();
    let log = || d.oz(&a, &["logs", "--sandbox", &id.to_string()]).stdout;
    assert!(
        shown,
        "{name}: no visible window named *{}* on {} within 15 s:\n{}\nlog:\n{}",
        expect.title,
        x.display(),
        window_tree(&x.display(), None),
        log()
    );
    eprintln!("x11 {name}: oz launch {took:?}, window {window_after:?} after the launch began: {names:?}");
    // The window is mapped before its contents are drawn and sent: wait for them.
    let crop = window_crop(&x.display(), &windows[0].0);
    let mut seen = (0, 0);
    let painted = common_daemon::wait_until(Duration::from_secs(5), || {
        let (png, _) = screenshot(&x.display(), &format!("app-{name}"));
        let document = expect.document_colour.map(|c| pixels_near(&png, &crop, c)).unwrap_or(500);
        seen = (colours_in(&png, &crop), document);
        seen.0 > 1 && seen.1 >= 500
    });
    assert!(
        painted,
        "{name}: its window {crop} shows {} colours, {} pixels of the document's colour {:?} (artifact app-{name}.png); log:\n{}",
        seen.0,
        seen.1,
        expect.document_colour,
        log()
    );
    eprintln!("x11 {name}: window painted {:?} after the launch began", t.elapsed());
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

/// A one-page PDF titled `title` whose page holds a filled red (#e01010) band and a line of
/// text (minimal, offsets computed), written as the user; its path.
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
text = b"0.878 0.063 0.063 rg 20 20 260 60 re f 0 0 0 rg BT /F1 24 Tf 40 120 Td (oz sandbox test) Tj ET"
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

/// The red of [`write_pdf`]'s band.
const PDF_RED: (u8, u8, u8) = (224, 16, 16);

/// A 320x240 PNG, blue with a yellow (#f0c814) ellipse, written as the user; its path.
fn write_png(a: &TestUser, file: &str) -> String {
    let script = format!(
        "from PIL import Image, ImageDraw\nimport os\np = os.path.expanduser('~/{file}')\n\
         im = Image.new('RGB', (320, 240), (30, 90, 200))\nImageDraw.Draw(im).ellipse((60, 40, 260, 200), fill=(240, 200, 20))\n\
         im.save(p)\nprint(p)"
    );
    let out = a.command("/usr/bin/python3").args(["-c", &script]).output().expect("python3");
    assert!(out.status.success(), "write the png: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The yellow of [`write_png`]'s ellipse.
const PNG_YELLOW: (u8, u8, u8) = (240, 200, 20);

#[test]
fn shipped_xterm_shows_its_window() {
    let names =
        shows_window(shipped_profile("xterm"), |_| Vec::new(), Expect { title: "xterm", document_colour: None });
    assert!(names.iter().any(|n| n.starts_with("[oz] ")), "the window is the sandbox's (Xpra's title): {names:?}");
}

/// `profile` (an evince) opens a PDF titled `title` given as its argument (`allow_files`): its
/// window is titled by the document's title and shows the page's red band.
fn evince_opens_a_pdf(profile: serde_json::Value, file: &'static str, title: &'static str) {
    let pdf = |a: &TestUser| vec![write_pdf(a, file, title)];
    let names = shows_window(profile, pdf, Expect { title, document_colour: Some(PDF_RED) });
    assert!(names.iter().any(|n| n.starts_with("[oz] ")), "the window is the sandbox's (Xpra's title): {names:?}");
}

#[test]
fn shipped_evince_opens_a_pdf_argument() {
    evince_opens_a_pdf(shipped_profile("evince"), "ozt-evince.pdf", "Ozt Sandboxed Document");
}

/// A directory for copies of policy files, readable by the daemon.
fn policy_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    dir
}

/// The corpus's evince (empty networking, its own seccomp whitelist, completed for Debian 12)
/// opens a PDF argument.
#[test]
fn corpus_evince_opens_a_pdf_argument() {
    let dir = policy_dir("ozt-corpus-evince");
    let profile = corpus_profile_completed("evince", dir.path(), CORPUS_SECCOMP_ADDITIONS);
    evince_opens_a_pdf(profile, "ozt-corpus-evince.pdf", "Ozt Corpus Document");
}

/// What Debian 12's glibc and GLib call in evince and eog that the corpus's whitelists (written
/// for Debian 8) do not allow. Denied them, the programs failed as seen: `getdents64` (glibc
/// lists directories with it; evince ended at once, unable to list its backends, and eog's
/// fontconfig found no fonts), `statx` (GLib looks at the file argument with it; eog showed an
/// empty "Image Viewer"), `futex` waits on a bitset with either clock (`FUTEX_WAIT_BITSET |
/// FUTEX_PRIVATE_FLAG`, with and without `FUTEX_CLOCK_REALTIME`: glibc's timed condition waits;
/// glibc aborted with "The futex facility returned an unexpected error code"), and glibc's and
/// GLib's thread and limit queries.
const CORPUS_SECCOMP_ADDITIONS: &str = "\n# Debian 12 (glibc 2.36, GLib 2.74, evince 43, eog 43)\n\
    getdents64: 1\nstatx: 1\nfutex: arg1 == 137 || arg1 == 393\nrseq: 1\nprlimit64: 1\ngettid: 1\n\
    sched_getattr: 1\nsched_setattr: 1\n";

/// eog opens the image given as its argument: its window is titled by the file name (eog
/// titles an empty viewer "Image Viewer" and shows "No images found") and shows the image.
fn eog_opens_an_image(profile: serde_json::Value, file: &'static str) {
    let png = |a: &TestUser| vec![write_png(a, file)];
    let names = shows_window(profile, png, Expect { title: file, document_colour: Some(PNG_YELLOW) });
    assert!(names.iter().all(|n| !n.contains("Image Viewer")), "eog found no image: {names:?}");
}

/// The corpus's eog (empty networking, its own seccomp whitelist, completed for Debian 12)
/// opens an image argument.
#[test]
fn corpus_eog_opens_an_image_argument() {
    let dir = policy_dir("ozt-corpus-eog");
    eog_opens_an_image(corpus_profile_completed("eog", dir.path(), CORPUS_SECCOMP_ADDITIONS), "ozt-corpus-eog.png");
}

#[test]
fn shipped_eog_opens_an_image_argument() {
    eog_opens_an_image(shipped_profile("eog"), "ozt-eog.png");
}
