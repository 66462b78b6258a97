//! Single byte ranges (`bytes=a-b`, `bytes=a-`, `bytes=-n`).

use crate::CoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `bytes=first-last` (inclusive).
    Bounded { first: u64, last: u64 },
    /// `bytes=first-`.
    From { first: u64 },
    /// `bytes=-len`: the last `len` bytes.
    Suffix { len: u64 },
}

impl RangeSpec {
    /// Resolves to an inclusive `(start, end)` within an object of `size` bytes, or
    /// `InvalidRange` when no byte of the object is selected.
    pub fn resolve(self, size: u64) -> Result<(u64, u64), CoreError> {
        let invalid = CoreError::InvalidRange { size };
        match self {
            Self::Bounded { first, last } if first <= last && first < size => {
                Ok((first, last.min(size - 1)))
            }
            Self::From { first } if first < size => Ok((first, size - 1)),
            Self::Suffix { len } if len > 0 && size > 0 => Ok((size - len.min(size), size - 1)),
            _ => Err(invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution() {
        assert_eq!(
            RangeSpec::Bounded { first: 0, last: 0 }
                .resolve(10)
                .unwrap(),
            (0, 0)
        );
        assert_eq!(
            RangeSpec::Bounded {
                first: 5,
                last: 100
            }
            .resolve(10)
            .unwrap(),
            (5, 9)
        );
        assert!(
            RangeSpec::Bounded {
                first: 10,
                last: 12
            }
            .resolve(10)
            .is_err()
        );
        assert_eq!(RangeSpec::From { first: 9 }.resolve(10).unwrap(), (9, 9));
        assert!(RangeSpec::From { first: 10 }.resolve(10).is_err());
        assert_eq!(RangeSpec::Suffix { len: 3 }.resolve(10).unwrap(), (7, 9));
        assert_eq!(RangeSpec::Suffix { len: 30 }.resolve(10).unwrap(), (0, 9));
        assert!(RangeSpec::Suffix { len: 0 }.resolve(10).is_err());
        assert!(RangeSpec::From { first: 0 }.resolve(0).is_err());
    }
}
