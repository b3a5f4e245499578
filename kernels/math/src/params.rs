//! Parsing and validation of the textual `(name, value)` parameters the contract passes,
//! with errors that name the parameter and the offending value.

use crate::Param;

/// A parsed view over a parameter list that knows which names its algorithm accepts.
pub struct Params<'a> {
    algo: &'static str,
    list: &'a [Param],
}

impl<'a> Params<'a> {
    /// Fails on a name outside `known` or a name given twice.
    pub fn new(algo: &'static str, list: &'a [Param], known: &[&str]) -> Result<Self, String> {
        for (i, (name, _)) in list.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                return Err(format!("unknown parameter '{name}' for {algo} (expected one of: {})", known.join(", ")));
            }
            if list[..i].iter().any(|(n, _)| n == name) {
                return Err(format!("parameter '{name}' given twice"));
            }
        }
        Ok(Self { algo, list })
    }

    pub fn raw(&self, name: &str) -> Option<&'a str> {
        self.list.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn parse<T: std::str::FromStr>(&self, name: &str, what: &str) -> Result<Option<T>, String> {
        match self.raw(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<T>()
                .map(Some)
                .map_err(|_| format!("{} parameter '{name}' must be {what}, got '{v}'", self.algo)),
        }
    }

    /// A required positive integer.
    pub fn count(&self, name: &str) -> Result<u64, String> {
        match self.parse::<u64>(name, "a positive integer")? {
            None => Err(format!("{} needs parameter '{name}'", self.algo)),
            Some(0) => Err(format!("{} parameter '{name}' must be at least 1, got 0", self.algo)),
            Some(v) => Ok(v),
        }
    }

    pub fn u64_or(&self, name: &str, default: u64) -> Result<u64, String> {
        Ok(self.parse::<u64>(name, "a non-negative integer")?.unwrap_or(default))
    }

    /// A finite, non-negative float.
    pub fn nonneg_or(&self, name: &str, default: f64) -> Result<f64, String> {
        let v = self.parse::<f64>(name, "a number")?.unwrap_or(default);
        if !v.is_finite() || v < 0.0 {
            return Err(format!("{} parameter '{name}' must be a finite number >= 0, got {v}", self.algo));
        }
        Ok(v)
    }

    /// A finite, strictly positive float.
    pub fn positive_or(&self, name: &str, default: f64) -> Result<f64, String> {
        let v = self.nonneg_or(name, default)?;
        if v == 0.0 {
            return Err(format!("{} parameter '{name}' must be > 0, got 0", self.algo));
        }
        Ok(v)
    }

    /// One of `choices` (the first is the default).
    pub fn choice_or(&self, name: &str, choices: &[&'static str]) -> Result<&'static str, String> {
        match self.raw(name) {
            None => Ok(choices[0]),
            Some(v) => choices.iter().copied().find(|c| *c == v).ok_or_else(|| {
                format!("{} parameter '{name}' must be one of {}, got '{v}'", self.algo, choices.join(", "))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(list: &[(&str, &str)]) -> Vec<Param> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn unknown_and_duplicate_names_are_refused() {
        let l = p(&[("kk", "3")]);
        let e = Params::new("kmeans", &l, &["k"]).err().unwrap();
        assert_eq!(e, "unknown parameter 'kk' for kmeans (expected one of: k)");
        let l = p(&[("k", "3"), ("k", "4")]);
        assert_eq!(Params::new("kmeans", &l, &["k"]).err().unwrap(), "parameter 'k' given twice");
    }

    #[test]
    fn values_are_checked_with_the_offending_value_named() {
        let l = p(&[("k", "0"), ("tol", "-1"), ("lr", "abc"), ("init", "best")]);
        let ps = Params::new("x", &l, &["k", "tol", "lr", "init"]).unwrap();
        assert_eq!(ps.count("k").unwrap_err(), "x parameter 'k' must be at least 1, got 0");
        assert!(ps.nonneg_or("tol", 1.0).unwrap_err().contains("got -1"));
        assert_eq!(ps.positive_or("lr", 1.0).unwrap_err(), "x parameter 'lr' must be a number, got 'abc'");
        assert!(ps.choice_or("init", &["first", "random"]).unwrap_err().contains("got 'best'"));
        assert_eq!(ps.nonneg_or("missing", 0.5).unwrap(), 0.5);
    }
}
