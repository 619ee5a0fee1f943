//! What a verb prints, as virsh prints it: data always; informational
//! messages (virsh's vshPrintExtra) and table headers only without `-q`;
//! and, without `-q`, the blank line virsh ends each command with.

pub struct Output {
    quiet: bool,
    text: String,
}

impl Output {
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            text: String::new(),
        }
    }

    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// What the command is asked for: printed even with `-q`.
    pub fn data(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// A message about what was done: left out with `-q`.
    pub fn extra(&mut self, text: &str) {
        if !self.quiet {
            self.text.push_str(text);
        }
    }

    /// Writes out what was gathered so far (net-event prints each event
    /// as it comes).
    pub fn flush(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(self.text.as_bytes())?;
        stdout.flush()?;
        self.text.clear();
        Ok(())
    }

    /// What is left to print, with virsh's closing blank line when
    /// `closing` (virsh's commands have one; virtnet's offline ones and
    /// refused command lines do not).
    pub fn finish(mut self, closing: bool) -> String {
        if closing && !self.quiet {
            self.text.push('\n');
        }
        self.text
    }
}
