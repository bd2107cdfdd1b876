//! A TensorBoard event-file writer for scalars (loss, accuracy, learning rate),
//! so `tensorboard --logdir DIR` shows training curves, as the original
//! package's `tensorboard_logdir` did.
//!
//! The format: a TFRecord stream (`u64` length, masked CRC-32C of the length,
//! the bytes, masked CRC-32C of the bytes) of `tensorflow.Event` protobufs; the
//! first holds `file_version = "brain.Event:2"`, the others a `Summary` with
//! `simple_value`s. The few protobuf fields needed are encoded here by hand.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(field: u32, wire: u8, out: &mut Vec<u8>) {
    varint(u64::from(field << 3 | u32::from(wire)), out);
}

fn len_delimited(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    key(field, 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn masked_crc(bytes: &[u8]) -> u32 {
    let c = crc32c::crc32c(bytes);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// Writes scalar summaries to one event file in a log folder.
#[derive(Debug)]
pub struct EventWriter {
    out: BufWriter<File>,
    path: PathBuf,
}

impl EventWriter {
    /// Creates `logdir` if needed and a new event file in it.
    pub fn create(logdir: &Path) -> Result<Self> {
        std::fs::create_dir_all(logdir).map_err(|e| Error::io("cannot create folder", logdir.to_path_buf(), e))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let path = logdir.join(format!("events.out.tfevents.{}.cvtk.{}", now.as_secs(), std::process::id()));
        let file = File::create(&path).map_err(|e| Error::io("cannot create", path.clone(), e))?;
        let mut w = EventWriter { out: BufWriter::new(file), path };
        let mut ev = Vec::new();
        Self::wall_time(&mut ev);
        len_delimited(3, b"brain.Event:2", &mut ev);
        w.record(&ev)?;
        Ok(w)
    }

    /// The event file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn wall_time(ev: &mut Vec<u8>) {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        key(1, 1, ev);
        ev.extend_from_slice(&t.to_le_bytes());
    }

    fn record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let io = |e| Error::io("cannot write", self.path.clone(), e);
        let mut buf = Vec::with_capacity(data.len() + 16);
        buf.extend_from_slice(&len);
        buf.extend_from_slice(&masked_crc(&len).to_le_bytes());
        buf.extend_from_slice(data);
        buf.extend_from_slice(&masked_crc(data).to_le_bytes());
        self.out.write_all(&buf).map_err(io)
    }

    /// Writes scalars `(tag, value)` at `step`, and flushes.
    pub fn scalars(&mut self, step: i64, values: &[(&str, f64)]) -> Result<()> {
        let mut summary = Vec::new();
        for (tag, v) in values {
            let mut value = Vec::new();
            len_delimited(1, tag.as_bytes(), &mut value);
            key(2, 5, &mut value);
            value.extend_from_slice(&(*v as f32).to_le_bytes());
            len_delimited(1, &value, &mut summary);
        }
        let mut ev = Vec::new();
        Self::wall_time(&mut ev);
        key(2, 0, &mut ev);
        varint(step as u64, &mut ev);
        len_delimited(5, &summary, &mut ev);
        self.record(&ev)?;
        let path = self.path.clone();
        self.out.flush().map_err(|e| Error::io("cannot write", path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_masking_matches_tensorflow() {
        // TensorFlow's crc32c::Mask of crc32c("") = 0 is 0xa282ead8.
        assert_eq!(masked_crc(b""), 0xa282_ead8);
        let mut v = Vec::new();
        varint(300, &mut v);
        assert_eq!(v, vec![0xac, 0x02]);
    }
}
