//! [`LrSchedule`]: a learning rate per epoch, the original's `lr_per_mb`.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A learning rate per epoch; its length is the number of epochs. Parses and
/// prints the command line's compact form, `"0.05*7,0.005*7,0.0005"` (a rate
/// with a repeat count, Python-list style).
///
/// ```
/// use cvtk_model::LrSchedule;
/// let s: LrSchedule = "0.05*2,0.005".parse()?;
/// assert_eq!(s.rates(), [0.05, 0.05, 0.005]);
/// assert_eq!(s.to_string(), "0.05*2,0.005");
/// assert_eq!(LrSchedule::step(0.1, 3).rates(), [0.1, 0.1, 0.01]);
/// assert_eq!(LrSchedule::default().epochs(), 15);
/// # Ok::<(), cvtk_model::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LrSchedule(Vec<f64>);

impl Default for LrSchedule {
    /// The original's `[0.05]*7 + [0.005]*7 + [0.0005]` (15 epochs).
    fn default() -> Self {
        let mut lr = vec![0.05; 7];
        lr.extend([0.005; 7]);
        lr.push(0.0005);
        LrSchedule(lr)
    }
}

impl From<Vec<f64>> for LrSchedule {
    fn from(rates: Vec<f64>) -> Self {
        LrSchedule(rates)
    }
}

impl LrSchedule {
    /// `epochs` epochs at `lr`.
    pub fn constant(lr: f64, epochs: usize) -> Self {
        LrSchedule(vec![lr; epochs])
    }

    /// `epochs` epochs at `lr`, then a tenth of it for the last third (at
    /// least one epoch), like the original's step schedule.
    pub fn step(lr: f64, epochs: usize) -> Self {
        let epochs = epochs.max(1);
        let low = (epochs / 3).max(usize::from(epochs > 1));
        LrSchedule((0..epochs).map(|e| if e < epochs - low { lr } else { lr / 10.0 }).collect())
    }

    /// The rates, one per epoch.
    pub fn rates(&self) -> &[f64] {
        &self.0
    }

    /// Number of epochs.
    pub fn epochs(&self) -> usize {
        self.0.len()
    }

    /// The rate of epoch `e` (from 0).
    pub fn rate(&self, e: usize) -> Option<f64> {
        self.0.get(e).copied()
    }

    /// Checks that there is at least one epoch and every rate is a positive number.
    pub fn check(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidConfig { field: "lr_per_mb", reason });
        if self.0.is_empty() {
            return bad("needs at least one epoch's learning rate".into());
        }
        if let Some(lr) = self.0.iter().find(|lr| !lr.is_finite() || **lr <= 0.0) {
            return bad(format!("{lr} is not a positive learning rate"));
        }
        Ok(())
    }
}

impl std::str::FromStr for LrSchedule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: String| Error::InvalidConfig { field: "lr_per_mb", reason };
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (v, n) = match part.split_once('*') {
                Some((v, n)) => (
                    v.trim(),
                    n.trim().parse::<usize>().map_err(|_| bad(format!("'{n}' in '{part}' is not a repeat count")))?,
                ),
                None => (part, 1),
            };
            let lr: f64 = v.parse().map_err(|_| bad(format!("'{v}' in '{s}' is not a number")))?;
            out.extend(std::iter::repeat_n(lr, n));
        }
        if out.is_empty() {
            return Err(bad("the schedule is empty; e.g. 0.05*7,0.005*7,0.0005".into()));
        }
        Ok(LrSchedule(out))
    }
}

impl std::fmt::Display for LrSchedule {
    /// Runs of one rate as `rate*count`, comma-separated.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        let mut i = 0;
        while i < self.0.len() {
            let n = self.0[i..].iter().take_while(|&&r| r == self.0[i]).count();
            parts.push(if n == 1 { self.0[i].to_string() } else { format!("{}*{n}", self.0[i]) });
            i += n;
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_like_the_python_lists_and_print_back() {
        let s: LrSchedule = "0.05*2,0.005*1,0.0005".parse().unwrap();
        assert_eq!(s.rates(), [0.05, 0.05, 0.005, 0.0005]);
        assert_eq!(s.to_string(), "0.05*2,0.005,0.0005");
        assert_eq!("0.1".parse::<LrSchedule>().unwrap().rates(), [0.1]);
        assert_eq!(LrSchedule::default().to_string(), "0.05*7,0.005*7,0.0005");
        let e = |s: &str| s.parse::<LrSchedule>().unwrap_err().to_string();
        assert!(e("fast").contains("not a number"), "{}", e("fast"));
        assert!(e("0.1*x").contains("repeat count"));
        assert!(e("").contains("empty"));
    }

    #[test]
    fn a_step_schedule_ends_with_a_lower_rate() {
        assert_eq!(LrSchedule::step(0.1, 3).rates(), [0.1, 0.1, 0.01]);
        assert_eq!(LrSchedule::step(0.1, 1).rates(), [0.1]);
        assert_eq!(LrSchedule::step(0.01, 6).rates(), [0.01, 0.01, 0.01, 0.01, 0.001, 0.001]);
    }

    #[test]
    fn bad_rates_are_refused() {
        assert!(LrSchedule::from(vec![]).check().is_err());
        assert!(LrSchedule::from(vec![0.1, -1.0]).check().is_err());
        assert!(LrSchedule::from(vec![f64::NAN]).check().is_err());
        LrSchedule::default().check().unwrap();
    }
}
