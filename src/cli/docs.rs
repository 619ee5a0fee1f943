//! Man pages and shell completions, generated from the programs' own
//! argument definitions (so they cannot drift apart).

use std::path::Path;

use clap::CommandFactory;

use super::args::{virtnet, virtnetd};

/// Writes into `dir`: `man/virtnet.1`, `man/virtnetd.8`, and completions
/// for both programs in `completions/bash/`, `completions/zsh/` and
/// `completions/fish/`.
pub fn generate(dir: &Path) -> std::io::Result<()> {
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    for (command, section) in [
        (virtnet::Cli::command(), "1"),
        (virtnetd::Cli::command(), "8"),
    ] {
        let file = format!("{}.{section}", command.get_name());
        let mut page = Vec::new();
        clap_mangen::Man::new(command)
            .section(section)
            .render(&mut page)?;
        std::fs::write(man.join(file), page)?;
    }
    for (shell, subdir) in [
        (clap_complete::Shell::Bash, "bash"),
        (clap_complete::Shell::Zsh, "zsh"),
        (clap_complete::Shell::Fish, "fish"),
    ] {
        let out = dir.join("completions").join(subdir);
        std::fs::create_dir_all(&out)?;
        for mut command in [virtnet::Cli::command(), virtnetd::Cli::command()] {
            let name = command.get_name().to_owned();
            clap_complete::generate_to(shell, &mut command, name, &out)?;
        }
    }
    Ok(())
}
