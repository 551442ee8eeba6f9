//! Decimal128 as a number: BID decoding and exact comparison with every other width.
//! The bson crate keeps Decimal128 opaque; the `_id` index compares it numerically.

use std::cmp::Ordering;

use bson::Decimal128;

/// A decoded Decimal128: `(-1)^negative * coefficient * 10^exponent`, or a special value.
#[derive(Debug, Clone, Copy)]
pub(super) enum Dec {
    NaN,
    Infinite {
        negative: bool,
    },
    Finite {
        negative: bool,
        coefficient: u128,
        exponent: i32,
    },
}

const DEC_BIAS: i32 = 6176;
const DEC_MAX_COEFFICIENT: u128 = 9_999_999_999_999_999_999_999_999_999_999_999;

impl Dec {
    /// IEEE 754-2008 BID decoding; non-canonical coefficients read as zero (as mongod).
    pub(super) fn decode(value: &Decimal128) -> Dec {
        let bits = u128::from_le_bytes(value.bytes());
        let negative = bits >> 127 == 1;
        match (bits >> 122) & 0b1_1111 {
            0b1_1111 => return Dec::NaN,
            0b1_1110 => return Dec::Infinite { negative },
            _ => {}
        }
        let (exponent, coefficient) = if (bits >> 125) & 0b11 == 0b11 {
            // The large-coefficient form always exceeds 10^34 - 1: non-canonical.
            (((bits >> 111) & 0x3fff) as i32, 0)
        } else {
            let coefficient = bits & ((1u128 << 113) - 1);
            (
                ((bits >> 113) & 0x3fff) as i32,
                if coefficient > DEC_MAX_COEFFICIENT {
                    0
                } else {
                    coefficient
                },
            )
        };
        Dec::Finite {
            negative,
            coefficient,
            exponent: exponent - DEC_BIAS,
        }
    }

    pub(super) fn from_i64(value: i64) -> Dec {
        Dec::Finite {
            negative: value < 0,
            coefficient: u128::from(value.unsigned_abs()),
            exponent: 0,
        }
    }

    /// The double rounded to 34 significant digits (`{:.33e}` rounds correctly).
    pub(super) fn from_f64(value: f64) -> Dec {
        if value.is_nan() {
            return Dec::NaN;
        }
        if value.is_infinite() {
            return Dec::Infinite {
                negative: value < 0.0,
            };
        }
        if value == 0.0 {
            return Dec::Finite {
                negative: false,
                coefficient: 0,
                exponent: 0,
            };
        }
        let text = format!("{:.33e}", value.abs());
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        Dec::Finite {
            negative: value < 0.0,
            coefficient: digits.parse().unwrap_or(0),
            exponent: exponent.parse::<i32>().unwrap_or(0) - 33,
        }
    }

    /// -1, 0 or 1 (zero of either sign is 0).
    fn sign(&self) -> i8 {
        match self {
            Dec::NaN => 0,
            Dec::Infinite { negative } | Dec::Finite { negative, .. } => {
                if matches!(self, Dec::Finite { coefficient: 0, .. }) {
                    0
                } else if *negative {
                    -1
                } else {
                    1
                }
            }
        }
    }

    pub(super) fn compare(&self, other: &Dec) -> Ordering {
        match (self, other) {
            (Dec::NaN, Dec::NaN) => return Ordering::Equal,
            (Dec::NaN, _) => return Ordering::Less,
            (_, Dec::NaN) => return Ordering::Greater,
            _ => {}
        }
        let (sign, other_sign) = (self.sign(), other.sign());
        if sign != other_sign || sign == 0 {
            return sign.cmp(&other_sign);
        }
        let magnitude = match (self, other) {
            (Dec::Infinite { .. }, Dec::Infinite { .. }) => Ordering::Equal,
            (Dec::Infinite { .. }, _) => Ordering::Greater,
            (_, Dec::Infinite { .. }) => Ordering::Less,
            (
                Dec::Finite {
                    coefficient: a,
                    exponent: ae,
                    ..
                },
                Dec::Finite {
                    coefficient: b,
                    exponent: be,
                    ..
                },
            ) => compare_magnitude(*a, *ae, *b, *be),
            _ => Ordering::Equal,
        };
        if sign < 0 {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

/// Compares `a * 10^ae` with `b * 10^be` (both non-zero) exactly.
fn compare_magnitude(a: u128, ae: i32, b: u128, be: i32) -> Ordering {
    let (a, ae) = strip_zeros(a, ae);
    let (b, be) = strip_zeros(b, be);
    // Compare orders of magnitude first; then the exponents differ by less than the
    // digit count of the coefficient, so scaling one side cannot overflow 10^35.
    let a_magnitude = digits(a) as i32 + ae;
    let b_magnitude = digits(b) as i32 + be;
    if a_magnitude != b_magnitude {
        return a_magnitude.cmp(&b_magnitude);
    }
    match ae.cmp(&be) {
        Ordering::Equal => a.cmp(&b),
        Ordering::Greater => a
            .saturating_mul(10u128.saturating_pow((ae - be) as u32))
            .cmp(&b),
        Ordering::Less => a.cmp(&b.saturating_mul(10u128.saturating_pow((be - ae) as u32))),
    }
}

fn strip_zeros(mut coefficient: u128, mut exponent: i32) -> (u128, i32) {
    while coefficient != 0 && coefficient.is_multiple_of(10) {
        coefficient /= 10;
        exponent += 1;
    }
    (coefficient, exponent)
}

fn digits(mut value: u128) -> u32 {
    let mut count = 1;
    while value >= 10 {
        value /= 10;
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn parse(text: &str) -> Dec {
        Dec::decode(&Decimal128::from_str(text).expect("valid decimal"))
    }

    #[test]
    fn decodes_and_compares_exactly() {
        assert_eq!(parse("1.0").compare(&Dec::from_i64(1)), Ordering::Equal);
        assert_eq!(parse("1E+3").compare(&Dec::from_i64(1000)), Ordering::Equal);
        assert_eq!(parse("-2.5").compare(&Dec::from_i64(-2)), Ordering::Less);
        assert_eq!(parse("0.1").compare(&Dec::from_f64(0.1)), Ordering::Less);
        assert_eq!(parse("-0").compare(&Dec::from_i64(0)), Ordering::Equal);
        assert_eq!(
            parse("Infinity").compare(&Dec::from_i64(i64::MAX)),
            Ordering::Greater
        );
        assert_eq!(parse("NaN").compare(&parse("-Infinity")), Ordering::Less);
        assert_eq!(
            parse("1234567890123456789012345678901234")
                .compare(&parse("1.234567890123456789012345678901235E+33")),
            Ordering::Less
        );
    }
}
