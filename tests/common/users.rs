//! A system user made for a test, member of a group (made too when
//! missing); the guard removes what it made, on success and failure.

use std::process::Command;

use super::netns::run;

pub struct TestUser {
    pub name: String,
    made_group: Option<String>,
}

fn exists(database: &str, name: &str) -> bool {
    Command::new("getent")
        .args([database, name])
        .output()
        .is_ok_and(|output| output.status.success())
}

impl TestUser {
    /// A new user `vt<label><random>`, with no home and no login, whose
    /// supplementary groups (in /etc/group) are `group` alone.
    pub fn in_group(label: &str, group: &str) -> Self {
        let made_group = (!exists("group", group)).then(|| {
            run("groupadd", &["--system", group]);
            group.to_owned()
        });
        let mut bytes = [0u8; 3];
        virtnet::random::fill(&mut bytes).expect("random bytes");
        let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let user = Self {
            name: format!("vt{label}{suffix}"),
            made_group,
        };
        run(
            "useradd",
            &[
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--groups",
                group,
                &user.name,
            ],
        );
        user
    }

    /// setpriv as this user, with the supplementary groups /etc/group
    /// gives it.
    pub fn command(&self) -> Command {
        let mut command = Command::new("setpriv");
        command.args([
            &format!("--reuid={}", self.name),
            &format!("--regid={}", self.name),
            "--init-groups",
        ]);
        command
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
        if let Some(group) = &self.made_group {
            let _ = Command::new("groupdel").arg(group).output();
        }
    }
}
