#![no_main]
//! The profile loader never panics or hangs, whatever the bytes; what it accepts round-trips.

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let origin = Path::new("/fuzz/profile.json");
    if let Ok(loaded) = oz_profiles::load::parse_profile(data, origin) {
        let json = oz_profiles::load::to_json(&loaded.value);
        let again = oz_profiles::load::parse_profile(json.as_bytes(), origin)
            .expect("a loaded profile serializes to a loadable one");
        let (mut a, mut b) = (loaded.value, again.value);
        a.profile_path = None;
        b.profile_path = None;
        assert_eq!(a, b, "profile round trip");
    }
    let _ = oz_profiles::config_load::parse_config(data, origin);
});
