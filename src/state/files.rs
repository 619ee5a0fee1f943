//! Crash-safe file updates: a reader (or the daemon after a crash) sees
//! either the old file or the new one, never a mix.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A temporary name beside `path`, unique within this process, so that
/// concurrent writers of different files never share one.
fn temporary_beside(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.{}.{count}.tmp", std::process::id()))
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Writes `contents` to `path`: temporary file, fsync, rename, fsync of the
/// directory. Survives a crash of the machine.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    replace(path, contents, true)?;
    sync_parent(path)
}

/// Writes `contents` to `path` through a temporary file and a rename, with
/// no fsync: atomic if the process dies, for runtime files that do not
/// outlive a reboot of the machine anyway (network status, dnsmasq's).
pub fn write_runtime(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    replace(path, contents, false)
}

fn replace(path: &Path, contents: &[u8], sync: bool) -> std::io::Result<()> {
    let temporary = temporary_beside(path);
    let written = std::fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(contents)?;
        if sync { file.sync_all() } else { Ok(()) }
    });
    if let Err(error) = written.and_then(|()| std::fs::rename(&temporary, path)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    Ok(())
}

/// Makes `link` a symbolic link to `target`, replacing any link there.
pub fn symlink_atomically(target: &Path, link: &Path) -> std::io::Result<()> {
    let temporary = temporary_beside(link);
    std::os::unix::fs::symlink(target, &temporary)?;
    if let Err(error) = std::fs::rename(&temporary, link) {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    sync_parent(link)
}

/// Removes `path`; returns whether it was there. The directory is not
/// synced: like libvirt, a removal is left to the filesystem's next commit
/// (an fsync would wait for every pending change of the filesystem, tens of
/// milliseconds while networks start and stop).
pub fn remove(path: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Removes what writes interrupted by a crash left in `dir`: the
/// temporary files [`write_atomically`] and [`symlink_atomically`] make.
pub fn remove_temporaries(dir: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            remove(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_files_and_links_leaving_no_temporary() {
        let dir = std::env::temp_dir().join(format!("virtnet-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.xml");
        write_atomically(&file, b"one").unwrap();
        write_runtime(&file, b"two").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        let link = dir.join("a.link");
        symlink_atomically(&file, &link).unwrap();
        symlink_atomically(&file, &link).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), file);
        assert!(remove(&link).unwrap());
        assert!(!remove(&link).unwrap(), "already gone is fine");
        std::fs::write(dir.join(".a.xml.1.2.tmp"), "half").unwrap();
        remove_temporaries(&dir).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["a.xml"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
