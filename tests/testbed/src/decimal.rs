//! Decimal128 values as numbers: decode the IEEE 754-2008 BID encoding, compare exactly,
//! and do the little arithmetic the update operators need (`$inc`, `$mul`).
//!
//! The bson crate stores Decimal128 as opaque bytes; mongod compares it numerically with
//! every other number type, so the testbed must too.

use std::cmp::Ordering;

use bson::Decimal128;

const EXPONENT_BIAS: i32 = 6176;
const MAX_COEFFICIENT: u128 = 9_999_999_999_999_999_999_999_999_999_999_999; // 10^34 - 1

/// A finite decimal `(-1)^negative * coefficient * 10^exponent`, or NaN / ±infinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dec {
    pub negative: bool,
    pub kind: DecKind,
    pub coefficient: u128,
    pub exponent: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecKind {
    Finite,
    Infinite,
    NaN,
}

impl Dec {
    pub fn from_decimal128(value: &Decimal128) -> Dec {
        let bits = u128::from_le_bytes(value.bytes());
        let negative = bits >> 127 == 1;
        let combination = (bits >> 122) & 0b1_1111;
        if combination == 0b1_1111 {
            return Dec {
                negative: false,
                kind: DecKind::NaN,
                coefficient: 0,
                exponent: 0,
            };
        }
        if combination == 0b1_1110 {
            return Dec {
                negative,
                kind: DecKind::Infinite,
                coefficient: 0,
                exponent: 0,
            };
        }
        let (exponent_bits, coefficient) = if (bits >> 125) & 0b11 == 0b11 {
            // The large-coefficient form always exceeds 10^34 - 1: non-canonical, read as 0.
            (((bits >> 111) & 0x3fff) as i32, 0)
        } else {
            let coefficient = bits & ((1u128 << 113) - 1);
            let coefficient = if coefficient > MAX_COEFFICIENT {
                0
            } else {
                coefficient
            };
            (((bits >> 113) & 0x3fff) as i32, coefficient)
        };
        Dec {
            negative,
            kind: DecKind::Finite,
            coefficient,
            exponent: exponent_bits - EXPONENT_BIAS,
        }
    }

    /// Encodes back to Decimal128, rounding the coefficient to 34 digits if needed.
    pub fn to_decimal128(self) -> Decimal128 {
        let sign = if self.negative { 1u128 << 127 } else { 0 };
        let bits = match self.kind {
            DecKind::NaN => 0b1_1111u128 << 122,
            DecKind::Infinite => sign | (0b1_1110u128 << 122),
            DecKind::Finite => {
                let (mut coefficient, mut exponent) = (self.coefficient, self.exponent);
                while coefficient > MAX_COEFFICIENT {
                    let remainder = coefficient % 10;
                    coefficient /= 10;
                    if remainder >= 5 {
                        coefficient += 1;
                    }
                    exponent += 1;
                }
                while exponent + EXPONENT_BIAS < 0 && coefficient != 0 {
                    coefficient /= 10;
                    exponent += 1;
                }
                if coefficient == 0 {
                    exponent = exponent.clamp(-EXPONENT_BIAS, 12287 - EXPONENT_BIAS);
                }
                while exponent + EXPONENT_BIAS > 12287 && coefficient <= MAX_COEFFICIENT / 10 {
                    coefficient *= 10;
                    exponent -= 1;
                }
                let biased = (exponent + EXPONENT_BIAS).clamp(0, 12287) as u128;
                sign | (biased << 113) | coefficient
            }
        };
        Decimal128::from_bytes(bits.to_le_bytes())
    }

    pub fn from_i64(value: i64) -> Dec {
        Dec {
            negative: value < 0,
            kind: DecKind::Finite,
            coefficient: u128::from(value.unsigned_abs()),
            exponent: 0,
        }
    }

    /// mongod converts a double to Decimal128 with 34 significant digits before comparing.
    pub fn from_f64_34_digits(value: f64) -> Dec {
        if value.is_nan() {
            return Dec {
                negative: false,
                kind: DecKind::NaN,
                coefficient: 0,
                exponent: 0,
            };
        }
        if value.is_infinite() {
            return Dec {
                negative: value < 0.0,
                kind: DecKind::Infinite,
                coefficient: 0,
                exponent: 0,
            };
        }
        if value == 0.0 {
            return Dec {
                negative: value.is_sign_negative(),
                kind: DecKind::Finite,
                coefficient: 0,
                exponent: 0,
            };
        }
        // "{:.33e}" is correctly rounded to 34 significant digits.
        let text = format!("{:.33e}", value.abs());
        let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
        let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
        let coefficient: u128 = digits.parse().unwrap_or(0);
        let exponent: i32 = exp.parse::<i32>().unwrap_or(0) - 33;
        Dec {
            negative: value < 0.0,
            kind: DecKind::Finite,
            coefficient,
            exponent,
        }
    }

    pub fn is_nan(&self) -> bool {
        self.kind == DecKind::NaN
    }

    pub fn is_zero(&self) -> bool {
        self.kind == DecKind::Finite && self.coefficient == 0
    }

    pub fn to_f64(&self) -> f64 {
        match self.kind {
            DecKind::NaN => f64::NAN,
            DecKind::Infinite => {
                if self.negative {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                }
            }
            DecKind::Finite => {
                let text = format!(
                    "{}{}e{}",
                    if self.negative { "-" } else { "" },
                    self.coefficient,
                    self.exponent
                );
                text.parse().unwrap_or(0.0)
            }
        }
    }

    /// Numeric comparison (NaN handled by the caller; here NaN sorts lowest).
    pub fn cmp_value(&self, other: &Dec) -> Ordering {
        match (self.kind, other.kind) {
            (DecKind::NaN, DecKind::NaN) => return Ordering::Equal,
            (DecKind::NaN, _) => return Ordering::Less,
            (_, DecKind::NaN) => return Ordering::Greater,
            _ => {}
        }
        let self_sign = self.sign();
        let other_sign = other.sign();
        if self_sign != other_sign {
            return self_sign.cmp(&other_sign);
        }
        if self_sign == 0 {
            return Ordering::Equal;
        }
        let magnitude = self.cmp_magnitude(other);
        if self_sign < 0 {
            magnitude.reverse()
        } else {
            magnitude
        }
    }

    fn sign(&self) -> i8 {
        if self.kind == DecKind::Finite && self.coefficient == 0 {
            0
        } else if self.negative {
            -1
        } else {
            1
        }
    }

    fn cmp_magnitude(&self, other: &Dec) -> Ordering {
        match (self.kind, other.kind) {
            (DecKind::Infinite, DecKind::Infinite) => return Ordering::Equal,
            (DecKind::Infinite, _) => return Ordering::Greater,
            (_, DecKind::Infinite) => return Ordering::Less,
            _ => {}
        }
        let (a_coef, a_exp) = strip_zeros(self.coefficient, self.exponent);
        let (b_coef, b_exp) = strip_zeros(other.coefficient, other.exponent);
        let a_adjusted = digit_count(a_coef) as i32 + a_exp;
        let b_adjusted = digit_count(b_coef) as i32 + b_exp;
        if a_adjusted != b_adjusted {
            return a_adjusted.cmp(&b_adjusted);
        }
        // Same magnitude order: align exponents; the scaled coefficient has at most as many
        // digits as the other one, so it fits.
        match a_exp.cmp(&b_exp) {
            Ordering::Equal => a_coef.cmp(&b_coef),
            Ordering::Greater => scale(a_coef, (a_exp - b_exp) as u32).cmp(&b_coef),
            Ordering::Less => a_coef.cmp(&scale(b_coef, (b_exp - a_exp) as u32)),
        }
    }

    /// Exact sum when it fits in 34 digits after alignment; otherwise rounded.
    pub fn add(&self, other: &Dec) -> Dec {
        if self.is_nan() || other.is_nan() {
            return Dec {
                negative: false,
                kind: DecKind::NaN,
                coefficient: 0,
                exponent: 0,
            };
        }
        if self.kind == DecKind::Infinite || other.kind == DecKind::Infinite {
            if self.kind == DecKind::Infinite
                && other.kind == DecKind::Infinite
                && self.negative != other.negative
            {
                return Dec {
                    negative: false,
                    kind: DecKind::NaN,
                    coefficient: 0,
                    exponent: 0,
                };
            }
            return if self.kind == DecKind::Infinite {
                *self
            } else {
                *other
            };
        }
        let exponent = self.exponent.min(other.exponent);
        let a = signed_scaled(self, exponent);
        let b = signed_scaled(other, exponent);
        match (a, b) {
            (Some(a), Some(b)) => match a.checked_add(b) {
                Some(sum) => Dec {
                    negative: sum < 0,
                    kind: DecKind::Finite,
                    coefficient: sum.unsigned_abs(),
                    exponent,
                },
                None => Dec::from_f64_34_digits(self.to_f64() + other.to_f64()),
            },
            _ => Dec::from_f64_34_digits(self.to_f64() + other.to_f64()),
        }
    }

    pub fn mul(&self, other: &Dec) -> Dec {
        if self.is_nan() || other.is_nan() {
            return Dec {
                negative: false,
                kind: DecKind::NaN,
                coefficient: 0,
                exponent: 0,
            };
        }
        let negative = self.negative != other.negative;
        if self.kind == DecKind::Infinite || other.kind == DecKind::Infinite {
            if self.is_zero() || other.is_zero() {
                return Dec {
                    negative: false,
                    kind: DecKind::NaN,
                    coefficient: 0,
                    exponent: 0,
                };
            }
            return Dec {
                negative,
                kind: DecKind::Infinite,
                coefficient: 0,
                exponent: 0,
            };
        }
        match self.coefficient.checked_mul(other.coefficient) {
            Some(product) => Dec {
                negative,
                kind: DecKind::Finite,
                coefficient: product,
                exponent: self.exponent + other.exponent,
            },
            None => Dec::from_f64_34_digits(self.to_f64() * other.to_f64()),
        }
    }
}

fn signed_scaled(value: &Dec, exponent: i32) -> Option<i128> {
    let shift = (value.exponent - exponent) as u32;
    let scaled = value.coefficient.checked_mul(10u128.checked_pow(shift)?)?;
    let signed = i128::try_from(scaled).ok()?;
    Some(if value.negative { -signed } else { signed })
}

fn strip_zeros(mut coefficient: u128, mut exponent: i32) -> (u128, i32) {
    if coefficient == 0 {
        return (0, 0);
    }
    while coefficient.is_multiple_of(10) {
        coefficient /= 10;
        exponent += 1;
    }
    (coefficient, exponent)
}

fn digit_count(mut value: u128) -> u32 {
    let mut digits = 1;
    while value >= 10 {
        value /= 10;
        digits += 1;
    }
    digits
}

fn scale(value: u128, power: u32) -> u128 {
    value.saturating_mul(10u128.saturating_pow(power))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn parse(text: &str) -> Dec {
        Dec::from_decimal128(&Decimal128::from_str(text).unwrap())
    }

    #[test]
    fn decodes_and_compares() {
        assert_eq!(parse("1.0").cmp_value(&Dec::from_i64(1)), Ordering::Equal);
        assert_eq!(parse("-2.5").cmp_value(&Dec::from_i64(-2)), Ordering::Less);
        assert_eq!(
            parse("1E+3").cmp_value(&Dec::from_i64(1000)),
            Ordering::Equal
        );
        assert_eq!(
            parse("0.1").cmp_value(&Dec::from_f64_34_digits(0.1)),
            Ordering::Less
        );
        assert!(parse("NaN").is_nan());
        assert_eq!(
            parse("Infinity").cmp_value(&Dec::from_i64(i64::MAX)),
            Ordering::Greater
        );
        assert_eq!(parse("-0").cmp_value(&Dec::from_i64(0)), Ordering::Equal);
    }

    #[test]
    fn round_trips_and_adds() {
        let sum = parse("1.5").add(&parse("2.25"));
        assert_eq!(sum.to_decimal128().to_string(), "3.75");
        assert_eq!(parse("1.10").to_decimal128().to_string(), "1.10");
        assert_eq!(
            parse("3").mul(&parse("0.5")).to_decimal128().to_string(),
            "1.5"
        );
    }
}
