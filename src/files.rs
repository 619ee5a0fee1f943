//! Crash-safe file updates: a reader (or the daemon after a crash) sees
//! either the old file or the new one, never a mix. Every file and
//! directory gets its mode explicitly, whatever the process umask.

use std::fs::Permissions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use tempfile::{Builder, NamedTempFile};

/// Files only root reads: definitions, status, dnsmasq's configuration
/// (libvirt's virXMLSaveFile and virFileWriteStr use 0600 for these).
pub const PRIVATE: u32 = 0o600;
/// Files others read: dnsmasq's hosts files, which it reads again after
/// giving up root, and the lease status, which libvirt's NSS module reads
/// as any user (libvirt writes them 0644).
pub const READABLE: u32 = 0o644;
/// Directories: others may look up the readable files in them.
pub const DIRECTORY: u32 = 0o755;

/// How the temporary files beside a file are named: `.NAME.RANDOM.tmp`,
/// hidden, and known to [`remove_temporaries`].
const TEMPORARY_SUFFIX: &str = ".tmp";

/// A temporary object beside `path`, made by `make` from tempfile's
/// builder of those names and the directory: a random name no other
/// writer holds (tempfile tries names until one is free), the object
/// removed when dropped unless persisted.
fn temporary_beside<T>(
    path: &Path,
    make: impl FnOnce(&Builder, &Path) -> std::io::Result<NamedTempFile<T>>,
) -> std::io::Result<NamedTempFile<T>> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let prefix = format!(".{name}.");
    let mut names = Builder::new();
    names.prefix(&prefix).suffix(TEMPORARY_SUFFIX);
    make(&names, path.parent().unwrap_or(Path::new("")))
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
    // Made new (O_EXCL, so no link is followed) and 0600, as private as
    // any mode: the exact one is set before the contents go in, as the
    // umask only takes permissions away.
    let mut temporary = temporary_beside(path, |names, dir| names.tempfile_in(dir))?;
    temporary
        .as_file()
        .set_permissions(Permissions::from_mode(mode))?;
    temporary.write_all(contents)?;
    if sync {
        temporary.as_file().sync_all()?;
    }
    temporary.persist(path)?;
    Ok(())
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
    temporary_beside(link, |names, dir| {
        names.make_in(dir, |temporary| {
            std::os::unix::fs::symlink(target, temporary)
        })
    })?
    .persist(link)?;
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
        if name.starts_with('.') && name.ends_with(TEMPORARY_SUFFIX) {
            remove(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_files_and_links_leaving_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let file = dir.join("a.xml");
        write_atomically(&file, b"one", PRIVATE).unwrap();
        write_runtime(&file, b"two", READABLE).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        let link = dir.join("a.link");
        symlink_atomically(&file, &link).unwrap();
        symlink_atomically(&file, &link).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), file);
        assert_eq!(names_in(dir), ["a.link", "a.xml"]);
        assert!(remove(&link).unwrap());
        assert!(!remove(&link).unwrap(), "already gone is fine");

        // What a crash between making a temporary and renaming it leaves.
        let (_, file_left) = temporary_beside(&file, |names, dir| names.tempfile_in(dir))
            .unwrap()
            .keep()
            .unwrap();
        let (_, link_left) = temporary_beside(&link, |names, dir| {
            names.make_in(dir, |temporary| {
                std::os::unix::fs::symlink(&file, temporary)
            })
        })
        .unwrap()
        .keep()
        .unwrap();
        for (left, name) in [(&file_left, ".a.xml."), (&link_left, ".a.link.")] {
            let left = left.file_name().unwrap().to_string_lossy();
            assert!(left.starts_with(name) && left.ends_with(".tmp"), "{left}");
        }
        assert_eq!(names_in(dir).len(), 3);
        remove_temporaries(dir).unwrap();
        assert_eq!(names_in(dir), ["a.xml"]);
    }

    #[test]
    fn concurrent_writers_of_one_file_never_share_a_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.xml");
        let link = dir.path().join("a.link");
        std::thread::scope(|scope| {
            for writer in 0..8 {
                let (file, link) = (&file, &link);
                scope.spawn(move || {
                    for _ in 0..50 {
                        write_runtime(file, format!("{writer}").as_bytes(), READABLE).unwrap();
                        symlink_atomically(file, link).unwrap();
                    }
                });
            }
        });
        assert_eq!(names_in(dir.path()), ["a.link", "a.xml"]);
    }

    #[test]
    fn files_and_directories_get_their_modes_and_no_link_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        create_dirs(&dir.join("a/b")).unwrap();
        for made in [dir.join("a"), dir.join("a/b")] {
            let mode = std::fs::metadata(&made).unwrap().permissions().mode();
            assert_eq!(mode & 0o7777, DIRECTORY, "{}", made.display());
        }
        let victim = dir.join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        let planted = dir.join("a/b/file");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        write_runtime(&planted, b"readable", READABLE).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        let file = std::fs::symlink_metadata(&planted).unwrap();
        assert!(file.is_file());
        assert_eq!(file.permissions().mode() & 0o7777, READABLE);
        write_atomically(&planted, b"private", PRIVATE).unwrap();
        let mode = std::fs::metadata(&planted).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, PRIVATE);

        for mode in [0o777, 0o700] {
            std::fs::set_permissions(dir.join("a"), Permissions::from_mode(mode)).unwrap();
            set_dir_mode(&dir.join("a")).unwrap();
            let mode = std::fs::metadata(dir.join("a"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o7777, DIRECTORY);
        }
    }
}
