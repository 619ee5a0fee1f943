//! Man pages and shell completions, generated from the programs' own
//! argument definitions (so they cannot drift apart).

use std::path::Path;

use clap::CommandFactory;

use super::args::{virtnet, virtnetd};
use super::manpage;

/// bash's completion of virtnet: what `virtnet complete` offers, else
/// file names (`-o default`), as virsh's completion does.
const BASH_COMPLETION: &str = r#"# bash completion for virtnet
_virtnet() {
    local IFS=$'\n'
    COMPREPLY=($(virtnet complete -- "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _virtnet virtnet
"#;

/// Writes into `dir`: `man/virtnet.1`, `man/virtnetd.8`, and completions
/// for both programs in `completions/bash/`, `completions/zsh/` and
/// `completions/fish/`.
pub fn generate(dir: &Path) -> std::io::Result<()> {
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    let mut page = Vec::new();
    manpage::virtnet(virtnet::Cli::command(), &mut page)?;
    std::fs::write(man.join("virtnet.1"), page)?;
    let mut page = Vec::new();
    manpage::virtnetd(virtnetd::Cli::command(), &mut page)?;
    std::fs::write(man.join("virtnetd.8"), page)?;
    for (shell, subdir) in [
        (clap_complete::Shell::Bash, "bash"),
        (clap_complete::Shell::Zsh, "zsh"),
        (clap_complete::Shell::Fish, "fish"),
    ] {
        let out = dir.join("completions").join(subdir);
        std::fs::create_dir_all(&out)?;
        let mut virtnetd = virtnetd::Cli::command();
        clap_complete::generate_to(shell, &mut virtnetd, "virtnetd", &out)?;
        if shell == clap_complete::Shell::Bash {
            // Network names and update sections come from `virtnet
            // complete`, which knows what each verb takes.
            std::fs::write(out.join("virtnet.bash"), BASH_COMPLETION)?;
        } else {
            let mut command = virtnet::Cli::command();
            clap_complete::generate_to(shell, &mut command, "virtnet", &out)?;
        }
    }
    Ok(())
}
