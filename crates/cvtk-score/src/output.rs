//! Where rows go: [`Format`] (JSON Lines, CSV or Parquet, by the output's
//! extension), the [`Row`] written per image, and the resumable writers.
//!
//! JSON Lines and CSV are written straight to the output, a batch at a time,
//! flushed and synced after each, so a crash loses at most the batch being
//! written; a rerun reads the last complete row (cutting off a half-written
//! one) and continues after it. Parquet cannot be appended to or read
//! without its footer, so its rows go to a JSON Lines journal beside it
//! (`OUT.partial.jsonl`, resumable the same way), turned into the Parquet
//! file, row group by row group, when the last batch is done.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Rows per Parquet row group.
const ROW_GROUP: usize = 10_000;

/// The output's format, from its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.jsonl` (or `.ndjson`): one JSON object per line.
    Jsonl,
    /// `.csv`: a header, then one line per image.
    Csv,
    /// `.parquet`.
    Parquet,
}

impl Format {
    /// The format `path`'s extension names.
    pub fn of(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("jsonl" | "ndjson") => Ok(Format::Jsonl),
            Some("csv") => Ok(Format::Csv),
            Some("parquet") => Ok(Format::Parquet),
            _ => Err(Error::Invalid(format!(
                "{}: name the output .jsonl, .csv or .parquet (the extension picks the format)",
                path.display()
            ))),
        }
    }
}

impl Format {
    /// `jsonl`, `csv` or `parquet`: the extension it is written with.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.extension())
    }
}

impl std::str::FromStr for Format {
    type Err = Error;

    /// A format by name: `jsonl` (or `ndjson`), `csv` or `parquet`.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            "parquet" => Ok(Format::Parquet),
            _ => Err(Error::Invalid(format!("'{s}' is not a format: use jsonl, csv or parquet"))),
        }
    }
}

use cvtk_core::Ranked;

/// One image's result: its top labels, or why it could not be scored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The image's position in the whole input (see [`crate::Item::index`]).
    pub index: u64,
    /// Its manifest id, for manifest inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Its path or URL.
    pub path: String,
    /// The best labels, best first (empty when it failed).
    pub top: Vec<Ranked>,
    /// Why it could not be scored (unreadable, not an image, too large, a
    /// download that failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Row {
    /// The best label, if scored.
    pub fn label(&self) -> Option<&str> {
        self.top.first().map(|r| r.label.as_str())
    }
}

/// The last complete row of an output a rerun continues.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Done {
    pub rows: u64,
    pub last_index: u64,
    pub last_path: String,
}

/// The CSV (and Parquet) columns for `top` labels.
fn flat_columns(top: usize) -> Vec<String> {
    let mut c = vec!["index".to_string(), "id".into(), "path".into()];
    for k in 1..=top {
        c.push(format!("label_{k}"));
        c.push(format!("probability_{k}"));
    }
    c.push("error".into());
    c
}

/// What made an output's rows, kept beside it (`OUT.cvtk-score.json`), so
/// that a rerun continues only the run it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunRecord {
    /// The model (its folder and weights).
    pub model: String,
    /// Labels kept per row.
    pub top: usize,
    /// The shard, `K/N`, if any.
    pub shard: Option<String>,
}

/// The record of the run that writes `out`.
pub(crate) fn record_of(out: &Path) -> PathBuf {
    beside(out, ".cvtk-score.json")
}

/// The file beside `out` whose name is `out`'s with `suffix` added.
fn beside(out: &Path, suffix: &str) -> PathBuf {
    let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    out.with_file_name(name)
}

/// Checks that what `out` holds (the file, or a Parquet output's journal)
/// comes from this run (`run`), and records `run` beside it for a new
/// output. With `restart`, what is there is removed first. An output with
/// rows from another model or other options, or from a run that left no
/// record, is refused, saying how to start over.
pub(crate) fn check_run(out: &Path, format: Format, run: &RunRecord, restart: bool) -> Result<()> {
    let record = record_of(out);
    let journal = journal_of(out);
    let holds = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.len() > 0);
    let has_rows = holds(out) || (format == Format::Parquet && holds(&journal));
    if restart {
        for p in [out, journal.as_path(), record.as_path()] {
            match std::fs::remove_file(p) {
                Ok(()) => tracing::info!(file = %p.display(), "removed (--restart)"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("cannot remove", p, e)),
            }
        }
    } else if has_rows {
        let refuse = |why: String| Error::Resume {
            path: out.to_path_buf(),
            reason: format!("{why}; pass --restart to replace its rows, or write to another file"),
        };
        let earlier: RunRecord = match std::fs::read(&record) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| refuse(format!("its run record {} is not cvtk's ({e})", record.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(refuse(format!(
                    "it has rows but no run record ({}) saying what made them",
                    record.display()
                )))
            }
            Err(e) => return Err(Error::io("cannot read", &record, e)),
        };
        if earlier != *run {
            let mut differs = Vec::new();
            if earlier.model != run.model {
                differs.push(format!(
                    "its rows come from the model {}, this run scores with {}",
                    earlier.model, run.model
                ));
            }
            if earlier.top != run.top {
                differs.push(format!("they keep --top {}, this run {}", earlier.top, run.top));
            }
            if earlier.shard != run.shard {
                let shown = |s: &Option<String>| s.clone().unwrap_or_else(|| "all".into());
                differs.push(format!("they are shard {}, this run {}", shown(&earlier.shard), shown(&run.shard)));
            }
            return Err(refuse(differs.join("; ")));
        }
        return Ok(());
    }
    let bytes = serde_json::to_vec_pretty(run).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(cvtk_core::write_atomic(&record, &bytes)?)
}

/// Where rows are written, resumably: the output itself (JSON Lines, CSV) or
/// the journal of a Parquet output.
pub(crate) struct Sink {
    format: Format,
    out: PathBuf,
    /// The file rows are appended to.
    file: PathBuf,
    writer: File,
    top: usize,
}

/// The journal of a Parquet output.
pub(crate) fn journal_of(out: &Path) -> PathBuf {
    beside(out, ".partial.jsonl")
}

impl Sink {
    /// Opens `out` for `format` with `top` labels per row; what an earlier
    /// run left there is continued ([`Done`]), a half-written last line cut
    /// off.
    pub fn open(out: &Path, format: Format, top: usize) -> Result<(Sink, Option<Done>)> {
        let file = match format {
            Format::Parquet => journal_of(out),
            _ => out.to_path_buf(),
        };
        if format == Format::Parquet && out.exists() && !file.exists() {
            return Err(Error::Resume {
                path: out.to_path_buf(),
                reason: "it is a finished Parquet file (a Parquet file cannot be continued); pass --restart to score \
                         again into it, or write to another file"
                    .into(),
            });
        }
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
        }
        let mut writer = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&file)
            .map_err(|e| Error::io("cannot open", &file, e))?;
        let done = resume(&mut writer, &file, format, top)?;
        writer.seek(SeekFrom::End(0)).map_err(|e| Error::io("cannot seek", &file, e))?;
        let mut sink = Sink { format, out: out.to_path_buf(), file, writer, top };
        if format == Format::Csv && done.is_none() && sink.writer.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
            let header = csv_line(&flat_columns(top))?;
            sink.append(&header)?;
        }
        Ok((sink, done))
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.write_all(bytes).map_err(|e| Error::io("cannot write", &self.file, e))?;
        self.writer.sync_data().map_err(|e| Error::io("cannot sync", &self.file, e))
    }

    /// Appends one batch's rows and syncs them to disk.
    pub fn write(&mut self, rows: &[Row]) -> Result<()> {
        let mut bytes = Vec::new();
        for row in rows {
            match self.format {
                Format::Jsonl | Format::Parquet => {
                    serde_json::to_writer(&mut bytes, row).map_err(|e| Error::Invalid(e.to_string()))?;
                    bytes.push(b'\n');
                }
                Format::Csv => bytes.extend(csv_line(&flat_values(row, self.top))?),
            }
        }
        self.append(&bytes)
    }

    /// Ends the run: for Parquet, turns the journal into the Parquet file
    /// (written to a temporary name, then renamed) and removes the journal.
    pub fn finish(self) -> Result<()> {
        if self.format != Format::Parquet {
            return Ok(());
        }
        drop(self.writer);
        write_parquet(&self.file, &self.out, self.top)?;
        std::fs::remove_file(&self.file).map_err(|e| Error::io("cannot remove the journal", &self.file, e))
    }
}

fn csv_line(fields: &[String]) -> Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    w.write_record(fields).map_err(|e| Error::Invalid(format!("cannot write CSV: {e}")))?;
    w.into_inner().map_err(|e| Error::Invalid(format!("cannot write CSV: {e}")))
}

/// A text field as a CSV cell that a spreadsheet shows as text, never runs
/// as a formula: one starting with `=`, `+`, `-`, `@`, a tab or a carriage
/// return (or a `'`, so that the mapping can be undone) gets a leading `'`,
/// as OWASP recommends against CSV injection. [`csv_text`] undoes it.
fn csv_cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r', '\'']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// The text of a cell [`csv_cell`] wrote.
fn csv_text(cell: &str) -> &str {
    cell.strip_prefix('\'').unwrap_or(cell)
}

fn flat_values(row: &Row, top: usize) -> Vec<String> {
    let mut v = vec![row.index.to_string(), row.id.map(|i| i.to_string()).unwrap_or_default(), csv_cell(&row.path)];
    for k in 0..top {
        match row.top.get(k) {
            Some(r) => {
                v.push(csv_cell(&r.label));
                v.push(r.probability.to_string());
            }
            None => v.extend([String::new(), String::new()]),
        }
    }
    v.push(row.error.as_deref().map(csv_cell).unwrap_or_default());
    v
}

/// Finds the last complete row of `file`, cutting off a half-written one:
/// line by line for JSON Lines, record by record for CSV.
fn resume(file: &mut File, path: &Path, format: Format, top: usize) -> Result<Option<Done>> {
    let len = file.metadata().map_err(|e| Error::io("cannot read", path, e))?.len();
    if len == 0 {
        return Ok(None);
    }
    if format == Format::Csv {
        return resume_csv(file, path, top);
    }
    // Cut after the last newline: a crash can leave a partial line.
    let mut end = len;
    let mut last = [0u8; 1];
    loop {
        if end == 0 {
            break;
        }
        file.seek(SeekFrom::Start(end - 1)).map_err(|e| Error::io("cannot seek", path, e))?;
        file.read_exact(&mut last).map_err(|e| Error::io("cannot read", path, e))?;
        if last[0] == b'\n' {
            break;
        }
        end -= 1;
    }
    if end < len {
        tracing::warn!(file = %path.display(), "cutting off a half-written last row ({} bytes)", len - end);
        file.set_len(end).map_err(|e| Error::io("cannot truncate", path, e))?;
    }
    file.seek(SeekFrom::Start(0)).map_err(|e| Error::io("cannot seek", path, e))?;
    let mut rows = 0u64;
    let mut last_line = String::new();
    for line in BufReader::new(&mut *file).lines() {
        last_line = line.map_err(|e| Error::io("cannot read", path, e))?;
        rows += 1;
    }
    if rows == 0 {
        return Ok(None);
    }
    let row: Row = serde_json::from_str(&last_line)
        .map_err(|e| Error::Resume { path: path.to_path_buf(), reason: format!("its last row is not cvtk's: {e}") })?;
    let (last_index, last_path) = (row.index, row.path);
    Ok(Some(Done { rows, last_index, last_path }))
}

/// [`resume`] for CSV, record by record rather than line by line (a quoted
/// field may hold a newline), as bytes (a cut may split a character): the
/// header must be this run's (checked before anything is cut, so a foreign
/// file is left as it is); the last record is complete when it is exactly
/// what this writer writes for its fields (a cut one lacks its closing quote
/// or newline), and an incomplete one is cut off.
fn resume_csv(file: &mut File, path: &Path, top: usize) -> Result<Option<Done>> {
    let bad = |why: String| Error::Resume { path: path.to_path_buf(), reason: why };
    let header = csv_line(&flat_columns(top))?;
    file.seek(SeekFrom::Start(0)).map_err(|e| Error::io("cannot seek", path, e))?;
    // (start byte, fields) of the first and of the last two records.
    type Record = Option<(u64, csv::ByteRecord)>;
    let (mut first, mut last, mut before): (Record, Record, Record) = (None, None, None);
    let mut records = 0u64;
    {
        let mut reader =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(BufReader::new(&mut *file));
        let mut record = csv::ByteRecord::new();
        loop {
            let start = reader.position().byte();
            match reader.read_byte_record(&mut record) {
                Ok(true) => {
                    records += 1;
                    if first.is_none() {
                        first = Some((start, record.clone()));
                    }
                    before = last.replace((start, record.clone()));
                }
                Ok(false) => break,
                Err(e) => return Err(bad(format!("it is not CSV at byte {start}: {e}"))),
            }
        }
    }
    let read_from = |file: &mut File, start: u64| -> Result<Vec<u8>> {
        let mut raw = Vec::new();
        file.seek(SeekFrom::Start(start)).map_err(|e| Error::io("cannot seek", path, e))?;
        file.read_to_end(&mut raw).map_err(|e| Error::io("cannot read", path, e))?;
        Ok(raw)
    };
    let written = |fields: &csv::ByteRecord| -> Result<Vec<u8>> {
        let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
        w.write_byte_record(fields).map_err(|e| Error::Invalid(format!("cannot write CSV: {e}")))?;
        w.into_inner().map_err(|e| Error::Invalid(format!("cannot write CSV: {e}")))
    };
    let Some((_, first)) = first else { return Ok(None) };
    let first = written(&first)?;
    if records == 1 {
        // The header alone, whole or cut short.
        let raw = read_from(file, 0)?;
        if raw == header {
            return Ok(None);
        }
        if header.starts_with(&raw) {
            file.set_len(0).map_err(|e| Error::io("cannot truncate", path, e))?;
            return Ok(None);
        }
    }
    if records > 1 && first != header || records == 1 {
        let shown = String::from_utf8_lossy(&first).trim_end().to_string();
        let want = String::from_utf8_lossy(&header).trim_end().to_string();
        return Err(bad(format!("its header is '{shown}', this run writes '{want}' (another --top?)")));
    }
    let Some((start, fields)) = last else { return Ok(None) };
    let (last, records) = if read_from(file, start)? == written(&fields)? {
        (fields, records)
    } else {
        tracing::warn!(file = %path.display(), "cutting off a half-written last row");
        file.set_len(start).map_err(|e| Error::io("cannot truncate", path, e))?;
        match before {
            Some((_, f)) => (f, records - 1),
            None => return Ok(None),
        }
    };
    let rows = records - 1;
    if rows == 0 {
        return Ok(None);
    }
    let text = |i: usize| String::from_utf8_lossy(last.get(i).unwrap_or_default()).into_owned();
    let last_index = text(0).parse().map_err(|_| bad("its last row has no index".into()))?;
    Ok(Some(Done { rows, last_index, last_path: csv_text(&text(2)).to_string() }))
}

/// Writes the rows of the JSON Lines `journal` as the Parquet file `out`.
fn write_parquet(journal: &Path, out: &Path, top: usize) -> Result<()> {
    use parquet::data_type::{ByteArray, ByteArrayType, FloatType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;

    let perr = |e: parquet::errors::ParquetError| Error::Parquet { path: out.to_path_buf(), reason: e.to_string() };
    let mut schema =
        String::from("message score { required int64 index; optional int64 id; required binary path (UTF8);");
    for k in 1..=top {
        schema.push_str(&format!(" optional binary label_{k} (UTF8); optional float probability_{k};"));
    }
    schema.push_str(" optional binary error (UTF8); }");
    let schema = Arc::new(parquet::schema::parser::parse_message_type(&schema).map_err(perr)?);
    let props = Arc::new(WriterProperties::builder().set_compression(parquet::basic::Compression::SNAPPY).build());
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile_in(dir, out)?;
    let file = File::create(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
    let mut writer = SerializedFileWriter::new(file, schema, props).map_err(perr)?;
    let reader = BufReader::new(File::open(journal).map_err(|e| Error::io("cannot open", journal, e))?);
    let mut lines = reader.lines();
    loop {
        let mut rows = Vec::with_capacity(ROW_GROUP);
        for line in lines.by_ref().take(ROW_GROUP) {
            let line = line.map_err(|e| Error::io("cannot read", journal, e))?;
            rows.push(serde_json::from_str::<Row>(&line).map_err(|e| Error::Resume {
                path: journal.to_path_buf(),
                reason: format!("a row is not cvtk's: {e}"),
            })?);
        }
        if rows.is_empty() {
            break;
        }
        let mut group = writer.next_row_group().map_err(perr)?;
        let mut column = 0usize;
        while let Some(mut col) = group.next_column().map_err(perr)? {
            // Columns: index, id, path, (label_k, probability_k)*, error.
            let present = |opt: &dyn Fn(&Row) -> bool| -> Vec<i16> { rows.iter().map(|r| i16::from(opt(r))).collect() };
            match column {
                0 => {
                    let v: Vec<i64> = rows.iter().map(|r| r.index as i64).collect();
                    col.typed::<Int64Type>().write_batch(&v, None, None).map_err(perr)?;
                }
                1 => {
                    let v: Vec<i64> = rows.iter().filter_map(|r| r.id.map(|i| i as i64)).collect();
                    col.typed::<Int64Type>()
                        .write_batch(&v, Some(&present(&|r| r.id.is_some())), None)
                        .map_err(perr)?;
                }
                2 => {
                    let v: Vec<ByteArray> = rows.iter().map(|r| ByteArray::from(r.path.as_str())).collect();
                    col.typed::<ByteArrayType>().write_batch(&v, None, None).map_err(perr)?;
                }
                c if c < 3 + 2 * top => {
                    let k = (c - 3) / 2;
                    let defs = present(&|r| r.top.len() > k);
                    if (c - 3) % 2 == 0 {
                        let v: Vec<ByteArray> = rows
                            .iter()
                            .filter_map(|r| r.top.get(k))
                            .map(|t| ByteArray::from(t.label.as_str()))
                            .collect();
                        col.typed::<ByteArrayType>().write_batch(&v, Some(&defs), None).map_err(perr)?;
                    } else {
                        let v: Vec<f32> = rows.iter().filter_map(|r| r.top.get(k)).map(|t| t.probability).collect();
                        col.typed::<FloatType>().write_batch(&v, Some(&defs), None).map_err(perr)?;
                    }
                }
                _ => {
                    let v: Vec<ByteArray> =
                        rows.iter().filter_map(|r| r.error.as_deref()).map(ByteArray::from).collect();
                    col.typed::<ByteArrayType>()
                        .write_batch(&v, Some(&present(&|r| r.error.is_some())), None)
                        .map_err(perr)?;
                }
            }
            col.close().map_err(perr)?;
            column += 1;
        }
        group.close().map_err(perr)?;
    }
    let file = writer.into_inner().map_err(perr)?;
    file.sync_all().map_err(|e| Error::io("cannot sync", &tmp, e))?;
    std::fs::rename(&tmp, out).map_err(|e| Error::io("cannot rename into", out, e))?;
    cvtk_core::sync_dir(dir)?;
    Ok(())
}

/// A fresh temporary name beside `out`.
fn tempfile_in(dir: &Path, out: &Path) -> Result<PathBuf> {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(index: u64, path: &str, label: &str, error: Option<&str>) -> Row {
        Row {
            index,
            id: None,
            path: path.into(),
            top: vec![Ranked { label: label.into(), probability: 0.5 }],
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_as_formulas_are_written_as_text() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s.csv");
        let (mut sink, _) = Sink::open(&out, Format::Csv, 1).unwrap();
        sink.write(&[row(0, "=HYPERLINK(\"http://x\")", "+1", Some("@SUM(A1)")), row(1, "'quoted", "-", None)])
            .unwrap();
        drop(sink);
        let text = std::fs::read_to_string(&out).unwrap();
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let cells: Vec<Vec<String>> = r.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect();
        for cell in cells.iter().flat_map(|c| [&c[2], &c[3], &c[5]]) {
            assert!(!cell.starts_with(['=', '+', '-', '@']), "a formula cell: {cell:?} in {text}");
        }
        assert_eq!(csv_text(&cells[0][2]), "=HYPERLINK(\"http://x\")");
        assert_eq!(csv_text(&cells[1][2]), "'quoted");
        // Resuming reads the path back as it was.
        let (_, done) = Sink::open(&out, Format::Csv, 1).unwrap();
        assert_eq!(done.unwrap().last_path, "'quoted");
    }

    #[test]
    fn csv_rows_whose_path_holds_a_newline_resume_and_a_row_cut_inside_one_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s.csv");
        let (mut sink, _) = Sink::open(&out, Format::Csv, 1).unwrap();
        sink.write(&[row(0, "a\nb.png", "x", None), row(1, "c\nd.png", "y", None)]).unwrap();
        drop(sink);
        let (_, done) = Sink::open(&out, Format::Csv, 1).unwrap();
        let done = done.unwrap();
        assert_eq!((done.rows, done.last_index, done.last_path.as_str()), (2, 1, "c\nd.png"));
        // A crash right after the newline inside the second row's path.
        let text = std::fs::read_to_string(&out).unwrap();
        let cut = text.find("c\n").unwrap() + 2;
        std::fs::write(&out, &text[..cut]).unwrap();
        let (mut sink, done) = Sink::open(&out, Format::Csv, 1).unwrap();
        let done = done.unwrap();
        assert_eq!((done.rows, done.last_index, done.last_path.as_str()), (1, 0, "a\nb.png"));
        sink.write(&[row(1, "c\nd.png", "y", None)]).unwrap();
        drop(sink);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), text, "the resumed file is the uninterrupted one");
        // A header cut short is written again.
        std::fs::write(&out, "index,i").unwrap();
        let (_, done) = Sink::open(&out, Format::Csv, 1).unwrap();
        assert!(done.is_none());
        assert!(std::fs::read_to_string(&out).unwrap().starts_with("index,id,path,label_1"));
    }

    #[test]
    fn a_csv_row_cut_inside_a_character_is_cut_off_and_a_foreign_csv_is_left_whole() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s.csv");
        let (mut sink, _) = Sink::open(&out, Format::Csv, 1).unwrap();
        sink.write(&[row(0, "café.png", "x", None), row(1, "naïve.png", "y", None)]).unwrap();
        drop(sink);
        let whole = std::fs::read(&out).unwrap();
        let cut = whole.windows(2).position(|w| w == "ï".as_bytes()).unwrap() + 1;
        std::fs::write(&out, &whole[..cut]).unwrap();
        let (_, done) = Sink::open(&out, Format::Csv, 1).unwrap();
        let done = done.unwrap();
        assert_eq!((done.rows, done.last_path.as_str()), (1, "café.png"));
        // Someone else's CSV: refused, and not a byte of it cut.
        let foreign = dir.path().join("theirs.csv");
        std::fs::write(&foreign, "a,b\r\n1,2\r\n3,\"unfinished").unwrap();
        let before = std::fs::read(&foreign).unwrap();
        let e = Sink::open(&foreign, Format::Csv, 1).err().expect("refused").to_string();
        assert!(e.contains("header"), "{e}");
        assert_eq!(std::fs::read(&foreign).unwrap(), before);
    }
}
