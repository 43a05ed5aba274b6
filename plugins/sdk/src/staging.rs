//! `staging`: crash-safe output files for file-writing destinations. Records
//! go to a temp file beside the final one; at the end the temp file replaces
//! the final file or is appended to it, following the stream's sync mode and
//! Airbyte's rule that an overwrite only drops prior data once the stream
//! completed. Temp files left by a killed run are recovered on the next open.
//!
//! Line-oriented formats are assumed: a destination writes whole lines, each
//! ending in `\n`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{DestinationError, DestinationSyncMode};

/// The prefix of a staged (temp) file's name: a staged file is named
/// `_airbyte_tmp_<random>_<final file name>`.
pub const TEMP_PREFIX: &str = "_airbyte_tmp_";

/// The length of the random part of a temp file's name.
const TOKEN_LEN: usize = 12;

/// The write buffer of a staged file.
const BUFFER_BYTES: usize = 256 * 1024;

/// An output file written through a temp file in the same folder.
///
/// - Writes go to `_airbyte_tmp_<random>_<name>` beside the final file,
///   through a buffer; [`flush`](Self::flush) empties the buffer into the
///   file, so what was written survives a crash of the destination.
/// - [`close`](Self::close) with `clean`, for an
///   [`Overwrite`](DestinationSyncMode::Overwrite) stream that was
///   [marked complete](Self::mark_complete), renames the temp file over the
///   final file. In every other case (append modes, an overwrite without
///   COMPLETE, a run ending on an error) the prior data is kept and the temp
///   file's content is appended to the final file (or the temp file simply
///   becomes the final file when there is none yet).
/// - [`open`](Self::open) first recovers temp files of the same final file
///   left by a killed run, appending them to the final file; a half-written
///   last line of such a file is cut off.
///
/// Only one `StagedFile` may be open for a given final path at a time, and
/// a folder must not be written by two runs at once.
///
/// A file format with a header line (CSV) opens with
/// [`open_with_header`](Self::open_with_header): the header starts every
/// temp file and is dropped when the temp file is appended to a final file
/// that already has content.
#[derive(Debug)]
pub struct StagedFile {
    final_path: PathBuf,
    temp_path: PathBuf,
    file: BufWriter<File>,
    header_len: u64,
    overwrite: bool,
    complete: bool,
}

impl StagedFile {
    /// Stages a new version of `final_path` for a stream written in `mode`,
    /// creating its folder as needed.
    ///
    /// # Errors
    ///
    /// A [`FailureType::SystemError`](crate::FailureType::SystemError) naming
    /// the path when the folder, the recovery or the temp file fails.
    pub fn open(
        final_path: impl Into<PathBuf>,
        mode: DestinationSyncMode,
    ) -> Result<Self, DestinationError> {
        Self::open_with_header(final_path, mode, b"")
    }

    /// Like [`open`](Self::open), for a format whose files start with
    /// `header` (which should end with `\n`).
    ///
    /// # Errors
    ///
    /// As for [`open`](Self::open).
    pub fn open_with_header(
        final_path: impl Into<PathBuf>,
        mode: DestinationSyncMode,
        header: &[u8],
    ) -> Result<Self, DestinationError> {
        let final_path = final_path.into();
        let (folder, file_name) = split_path(&final_path)?;
        fs::create_dir_all(&folder).map_err(|e| {
            DestinationError::system(format!(
                "could not create the folder {}: {e}",
                folder.display()
            ))
        })?;
        let header_len = header.len() as u64;
        recover_orphans(&folder, &file_name, &final_path, header_len)?;
        let (temp_path, file) = create_temp(&folder, &file_name)?;
        let mut staged = Self {
            final_path,
            temp_path,
            file: BufWriter::with_capacity(BUFFER_BYTES, file),
            header_len,
            overwrite: mode == DestinationSyncMode::Overwrite,
            complete: false,
        };
        staged
            .write_all(header)
            .map_err(|e| staged.write_error(&e))?;
        Ok(staged)
    }

    /// The file that the staged content ends up in.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// The temp file being written.
    pub fn temp_path(&self) -> &Path {
        &self.temp_path
    }

    /// Records that the stream received TRACE STREAM_STATUS COMPLETE: an
    /// overwrite may now replace the prior data at a clean close.
    pub fn mark_complete(&mut self) {
        self.complete = true;
    }

    /// Empties the write buffer into the temp file, so that everything
    /// written so far survives a crash of the destination (not of the
    /// machine: there is no fsync).
    ///
    /// # Errors
    ///
    /// A [`FailureType::SystemError`](crate::FailureType::SystemError) naming
    /// the temp file.
    pub fn flush(&mut self) -> Result<(), DestinationError> {
        self.file.flush().map_err(|e| self.write_error(&e))
    }

    /// Moves the staged content into place (see the type's docs): replaces
    /// the final file for a clean, complete overwrite, and otherwise appends
    /// to it. `clean` is false when the run is ending on an error.
    ///
    /// # Errors
    ///
    /// A [`FailureType::SystemError`](crate::FailureType::SystemError) naming
    /// the files. The temp file is then left in place, for the next run to
    /// recover.
    pub fn close(self, clean: bool) -> Result<(), DestinationError> {
        let Self {
            final_path,
            temp_path,
            file,
            header_len,
            overwrite,
            complete,
        } = self;
        let file = file.into_inner().map_err(|e| {
            DestinationError::system(format!(
                "could not write {}: {}",
                temp_path.display(),
                e.error()
            ))
        })?;
        drop(file);
        let placed = if overwrite && complete && clean {
            fs::rename(&temp_path, &final_path)
        } else {
            append_or_rename(&temp_path, &final_path, header_len)
        };
        placed.map_err(|e| {
            DestinationError::system(format!(
                "could not move {} into {}: {e}",
                temp_path.display(),
                final_path.display()
            ))
        })
    }

    fn write_error(&self, e: &io::Error) -> DestinationError {
        DestinationError::system(format!("could not write {}: {e}", self.temp_path.display()))
    }
}

/// Writes go to the temp file's buffer. The inherent
/// [`StagedFile::flush`] shadows [`Write::flush`]; both empty the buffer.
impl Write for StagedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Splits a final path into its folder and file name.
fn split_path(final_path: &Path) -> Result<(PathBuf, String), DestinationError> {
    let file_name = final_path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            DestinationError::system(format!("{} does not name a file", final_path.display()))
        })?
        .to_string();
    let folder = match final_path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((folder, file_name))
}

/// Creates a new, uniquely named temp file for `file_name` in `folder`.
fn create_temp(folder: &Path, file_name: &str) -> Result<(PathBuf, File), DestinationError> {
    loop {
        let token: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(TOKEN_LEN)
            .collect();
        let temp_path = folder.join(format!("{TEMP_PREFIX}{token}_{file_name}"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp_path)
        {
            Ok(file) => return Ok((temp_path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(DestinationError::system(format!(
                    "could not create {}: {e}",
                    temp_path.display()
                )));
            }
        }
    }
}

/// Whether `name` is a temp file of `file_name`: `_airbyte_tmp_<token>_<file_name>`.
fn is_temp_of(name: &str, file_name: &str) -> bool {
    name.strip_prefix(TEMP_PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .is_some_and(|(token, rest)| {
            !token.is_empty()
                && token.chars().all(|c| c.is_ascii_alphanumeric())
                && rest == file_name
        })
}

/// Appends the temp files of `file_name` that a killed run left in `folder`
/// to the final file, oldest first.
fn recover_orphans(
    folder: &Path,
    file_name: &str,
    final_path: &Path,
    header_len: u64,
) -> Result<(), DestinationError> {
    let recovery_error = |path: &Path, e: io::Error| {
        DestinationError::system(format!(
            "could not recover {} left by an earlier run into {}: {e}",
            path.display(),
            final_path.display()
        ))
    };
    let entries = fs::read_dir(folder).map_err(|e| recovery_error(folder, e))?;
    let mut orphans = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| recovery_error(folder, e))?;
        let is_orphan = entry
            .file_name()
            .to_str()
            .is_some_and(|name| is_temp_of(name, file_name));
        if is_orphan {
            let modified = entry.metadata().and_then(|m| m.modified()).ok();
            orphans.push((modified, entry.path()));
        }
    }
    orphans.sort();
    for (_, orphan) in orphans {
        cut_partial_last_line(&orphan)
            .and_then(|()| append_or_rename(&orphan, final_path, header_len))
            .map_err(|e| recovery_error(&orphan, e))?;
    }
    Ok(())
}

/// Truncates `path` after its last `\n`, dropping a line that a killed
/// writer left half-written.
fn cut_partial_last_line(path: &Path) -> io::Result<()> {
    const CHUNK: u64 = 8 * 1024;
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut end = file.metadata()?.len();
    let mut chunk = vec![0; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let buf = &mut chunk[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(buf)?;
        if let Some(newline) = buf.iter().rposition(|b| *b == b'\n') {
            let keep = start + newline as u64 + 1;
            if keep != file.metadata()?.len() {
                file.set_len(keep)?;
            }
            return Ok(());
        }
        end = start;
    }
    file.set_len(0)
}

/// Puts the content of `temp` into `final_path`: appended (less the first
/// `header_len` bytes) when the final file has content, renamed into place
/// otherwise. `temp` is gone afterwards.
fn append_or_rename(temp: &Path, final_path: &Path, header_len: u64) -> io::Result<()> {
    let final_len = match fs::metadata(final_path) {
        Ok(metadata) => metadata.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    if final_len == 0 {
        return fs::rename(temp, final_path);
    }
    let mut source = File::open(temp)?;
    source.seek(SeekFrom::Start(header_len))?;
    let mut target = OpenOptions::new().append(true).open(final_path)?;
    io::copy(&mut source, &mut target)?;
    target.flush()?;
    drop(source);
    fs::remove_file(temp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use DestinationSyncMode::{Append, AppendDedup, Overwrite};

    fn read(path: &Path) -> String {
        fs::read_to_string(path).expect("read")
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Stages `lines` for `path` in `mode`, completing it if asked, and
    /// closes it.
    fn stage(path: &Path, mode: DestinationSyncMode, lines: &str, complete: bool, clean: bool) {
        let mut staged = StagedFile::open(path, mode).expect("open");
        staged.write_all(lines.as_bytes()).expect("write");
        if complete {
            staged.mark_complete();
        }
        staged.close(clean).expect("close");
    }

    #[test]
    fn writes_go_to_a_temp_file_until_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.jsonl");
        let mut staged = StagedFile::open(&path, Append).expect("open");
        staged.write_all(b"a\n").expect("write");
        staged.flush().expect("flush");
        let temp_name = staged
            .temp_path()
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(temp_name.starts_with(TEMP_PREFIX) && temp_name.ends_with("_out.jsonl"));
        assert_eq!(read(staged.temp_path()), "a\n");
        assert!(!path.exists());
        staged.close(true).expect("close");
        assert_eq!(read(&path), "a\n");
        assert_eq!(names(dir.path()), ["out.jsonl"]);
    }

    #[test]
    fn creates_missing_folders() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a/b/out.jsonl");
        stage(&path, Overwrite, "x\n", true, true);
        assert_eq!(read(&path), "x\n");
    }

    #[test]
    fn a_complete_clean_overwrite_replaces_the_final_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.jsonl");
        stage(&path, Overwrite, "old\n", true, true);
        stage(&path, Overwrite, "new\n", true, true);
        assert_eq!(read(&path), "new\n");
        // Even with no records at all.
        stage(&path, Overwrite, "", true, true);
        assert_eq!(read(&path), "");
    }

    #[test]
    fn an_overwrite_without_complete_keeps_prior_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.jsonl");
        stage(&path, Overwrite, "old\n", true, true);
        stage(&path, Overwrite, "new\n", false, true);
        assert_eq!(read(&path), "old\nnew\n");
    }

    #[test]
    fn an_unclean_close_keeps_prior_data_and_what_was_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.jsonl");
        stage(&path, Overwrite, "old\n", true, true);
        stage(&path, Overwrite, "new\n", true, false);
        assert_eq!(read(&path), "old\nnew\n");
        assert_eq!(names(dir.path()), ["out.jsonl"]);
    }

    #[test]
    fn append_modes_keep_prior_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.jsonl");
        stage(&path, Append, "1\n", true, true);
        stage(&path, Append, "2\n", true, true);
        stage(&path, AppendDedup, "3\n", true, true);
        assert_eq!(read(&path), "1\n2\n3\n");
    }

    #[test]
    fn orphans_of_a_killed_run_are_recovered_without_their_half_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("_airbyte_raw_users.jsonl");
        fs::write(&path, "prior\n").expect("write");
        fs::write(
            dir.path()
                .join("_airbyte_tmp_abc123_airbyte_raw_users.jsonl_not_mine"),
            "x",
        )
        .expect("write");
        let orphan = dir
            .path()
            .join("_airbyte_tmp_abc123__airbyte_raw_users.jsonl");
        fs::write(&orphan, "flushed 1\nflushed 2\nhalf a li").expect("write");
        let other = dir
            .path()
            .join("_airbyte_tmp_abc123__airbyte_raw_products.jsonl");
        fs::write(&other, "other\n").expect("write");

        stage(&path, Overwrite, "new\n", false, true);

        assert_eq!(read(&path), "prior\nflushed 1\nflushed 2\nnew\n");
        assert!(!orphan.exists());
        assert_eq!(read(&other), "other\n");
    }

    #[test]
    fn an_orphan_becomes_the_final_file_when_there_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.jsonl");
        fs::write(dir.path().join("_airbyte_tmp_Z9_out.jsonl"), "a\nb\n").expect("write");
        fs::write(dir.path().join("_airbyte_tmp_Y8_out.jsonl"), "no newline").expect("write");
        let staged = StagedFile::open(&path, Append).expect("open");
        assert_eq!(read(&path), "a\nb\n");
        staged.close(true).expect("close");
        assert_eq!(read(&path), "a\nb\n");
        assert_eq!(names(dir.path()), ["out.jsonl"]);
    }

    #[test]
    fn a_complete_overwrite_drops_recovered_orphans_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.jsonl");
        fs::write(&path, "prior\n").expect("write");
        fs::write(dir.path().join("_airbyte_tmp_abc_out.jsonl"), "orphan\n").expect("write");
        stage(&path, Overwrite, "new\n", true, true);
        assert_eq!(read(&path), "new\n");
        assert_eq!(names(dir.path()), ["out.jsonl"]);
    }

    #[test]
    fn a_header_appears_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.csv");
        for row in ["1\n", "2\n"] {
            let mut staged = StagedFile::open_with_header(&path, Append, b"h\n").expect("open");
            staged.write_all(row.as_bytes()).expect("write");
            staged.close(true).expect("close");
        }
        assert_eq!(read(&path), "h\n1\n2\n");
        let mut staged = StagedFile::open_with_header(&path, Overwrite, b"h\n").expect("open");
        staged.write_all(b"3\n").expect("write");
        staged.mark_complete();
        staged.close(true).expect("close");
        assert_eq!(read(&path), "h\n3\n");
    }

    #[test]
    fn temp_names_are_recognised_exactly() {
        assert!(is_temp_of("_airbyte_tmp_abc_x.jsonl", "x.jsonl"));
        assert!(is_temp_of(
            "_airbyte_tmp_abc__airbyte_raw_x.jsonl",
            "_airbyte_raw_x.jsonl"
        ));
        assert!(!is_temp_of("_airbyte_tmp_abc_xx.jsonl", "x.jsonl"));
        assert!(!is_temp_of("_airbyte_tmp__x.jsonl", "x.jsonl"));
        assert!(!is_temp_of("x.jsonl", "x.jsonl"));
    }
}
