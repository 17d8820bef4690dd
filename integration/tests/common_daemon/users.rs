//! The unprivileged test users `oz-test-a` and `oz-test-b`, created idempotently.

use std::path::PathBuf;
use std::process::Command;

#[derive(Debug, Clone)]
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

pub fn user_a() -> TestUser {
    lookup("oz-test-a")
}

pub fn user_b() -> TestUser {
    lookup("oz-test-b")
}

pub fn ensure_test_users() {
    for name in ["oz-test-a", "oz-test-b"] {
        if find(name).is_none() {
            let st = Command::new("useradd").args(["--create-home", "--shell", "/bin/sh", name]).status();
            // Exit 9: created meanwhile by a concurrent test run.
            assert!(
                matches!(st.map(|s| s.code()), Ok(Some(0 | 9))),
                "useradd {name} failed"
            );
        }
        let u = lookup(name);
        if !u.home.is_dir() {
            std::fs::create_dir_all(&u.home).unwrap();
            Command::new("chown").arg(format!("{}:{}", u.uid, u.gid)).arg(&u.home).status().unwrap();
        }
    }
}

fn lookup(name: &str) -> TestUser {
    find(name).unwrap_or_else(|| panic!("test user {name} missing"))
}

fn find(name: &str) -> Option<TestUser> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 7 && f[0] == name).then(|| TestUser {
            name: name.to_string(),
            uid: f[2].parse().unwrap(),
            gid: f[3].parse().unwrap(),
            home: PathBuf::from(f[5]),
        })
    })
}
