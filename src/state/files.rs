//! Crash-safe file updates: a reader (or the daemon after a crash) sees
//! either the old file or the new one, never a mix. Every file and
//! directory gets its mode explicitly, whatever the process umask.

use std::fs::Permissions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Files only root reads: definitions, status, dnsmasq's configuration
/// (libvirt's virXMLSaveFile and virFileWriteStr use 0600 for these).
pub const PRIVATE: u32 = 0o600;
/// Files others read: dnsmasq's hosts files, which it reads again after
/// giving up root, and the lease status, which libvirt's NSS module reads
/// as any user (libvirt writes them 0644).
pub const READABLE: u32 = 0o644;
/// Directories: others may look up the readable files in them.
pub const DIRECTORY: u32 = 0o755;

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

/// Writes `contents` to `path` with `mode`: temporary file, fsync, rename,
/// fsync of the directory. Survives a crash of the machine.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    replace(path, contents, mode, true)?;
    sync_parent(path)
}

/// Writes `contents` to `path` with `mode` through a temporary file and a
/// rename, with no fsync: atomic if the process dies, for runtime files
/// that do not outlive a reboot of the machine anyway (network status,
/// dnsmasq's).
pub fn write_runtime(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    replace(path, contents, mode, false)
}

fn replace(path: &Path, contents: &[u8], mode: u32, sync: bool) -> std::io::Result<()> {
    let temporary = temporary_beside(path);
    let written = create_new(&temporary, mode).and_then(|mut file| {
        file.write_all(contents)?;
        if sync { file.sync_all() } else { Ok(()) }
    });
    if let Err(error) = written.and_then(|()| std::fs::rename(&temporary, path)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    Ok(())
}

/// A new file with `mode`: no symlink is followed and no file reused. The
/// mode is set once the file is open, as the umask only takes permissions
/// away. A file already of that name is what an earlier process of the same
/// pid left (the name is unique within a process): it is replaced.
fn create_new(path: &Path, mode: u32) -> std::io::Result<std::fs::File> {
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
    };
    let file = match open() {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            remove(path)?;
            open()?
        }
        opened => opened?,
    };
    file.set_permissions(Permissions::from_mode(mode))?;
    Ok(file)
}

/// Makes `dir` and its missing parents, each with mode [`DIRECTORY`].
pub fn create_dirs(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent)?;
    }
    match std::fs::DirBuilder::new().mode(DIRECTORY).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, Permissions::from_mode(DIRECTORY)),
        // Made by another writer in the meantime.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(error) => Err(error),
    }
}

/// Gives `dir`, which virtnet owns but which may have been made at the
/// mercy of the umask, mode [`DIRECTORY`].
pub fn set_dir_mode(dir: &Path) -> std::io::Result<()> {
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o7777 == DIRECTORY {
        return Ok(());
    }
    std::fs::set_permissions(dir, Permissions::from_mode(DIRECTORY))
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
        write_atomically(&file, b"one", PRIVATE).unwrap();
        write_runtime(&file, b"two", READABLE).unwrap();
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

    #[test]
    fn files_and_directories_get_their_modes_and_no_link_is_followed() {
        let dir = std::env::temp_dir().join(format!("virtnet-modes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        create_dirs(&dir.join("a/b")).unwrap();
        for made in [dir.join("a"), dir.join("a/b")] {
            let mode = std::fs::metadata(&made).unwrap().permissions().mode();
            assert_eq!(mode & 0o7777, DIRECTORY, "{}", made.display());
        }
        let victim = dir.join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        let planted = dir.join("a/b/file");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        create_new(&planted, PRIVATE).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        let file = std::fs::symlink_metadata(&planted).unwrap();
        assert!(file.is_file());
        assert_eq!(file.permissions().mode() & 0o7777, PRIVATE);
        write_runtime(&planted, b"readable", READABLE).unwrap();
        let mode = std::fs::metadata(&planted).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, READABLE);

        for mode in [0o777, 0o700] {
            std::fs::set_permissions(dir.join("a"), Permissions::from_mode(mode)).unwrap();
            set_dir_mode(&dir.join("a")).unwrap();
            let mode = std::fs::metadata(dir.join("a"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o7777, DIRECTORY);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
