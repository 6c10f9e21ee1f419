//! Shamir secret sharing of 32-byte secrets, over GF(2^8) or the prime field GF(2^61 - 1).
//!
//! Our own small implementation, because `sharks` 0.5 draws every non-constant coefficient from
//! `1..=255` (never zero), which breaks Shamir's perfect secrecy, accepts thresholds 0 and 1,
//! and returns a wrong secret instead of an error on duplicate shares (see the module README).
//! Here the dealer draws every coefficient uniformly from the whole field (zero included),
//! requires `2 <= threshold <= shares`, and recovery rejects duplicate, zero or out-of-range
//! share indices.
//!
//! * [`ShamirField::Gf256`]: byte-wise over GF(2^8) with the AES-like polynomial
//!   `x^8 + x^4 + x^3 + x^2 + 1` (0x11d, the one `sharks` uses), at most 255 shares.
//!   A share of a 32-byte secret has 32 bytes.
//! * [`ShamirField::Mersenne61`]: over the prime field of `p = 2^61 - 1`, the secret cut into
//!   eight 32-bit limbs; up to `u32::MAX` shares (used by the full graph above 255
//!   collaborators). A share has 64 bytes.
//!
//! # Security
//! Table-based GF(2^8) arithmetic is not constant-time (cache timing). Shares and secrets live
//! in [`SecretShare`] and [`zeroize::Zeroizing`] buffers that are wiped on drop.
//!
//! ```
//! use flspec::secagg::shamir::{recover, split, ShamirField};
//! use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
//!
//! let mut rng = ChaCha20Rng::from_seed([7; 32]);
//! let secret = [42u8; 32];
//! let shares = split(ShamirField::Gf256, &secret, 3, 5, &mut rng)?;
//! let back = recover(ShamirField::Gf256, &shares[1..4], 3)?;
//! assert_eq!(*back, secret);
//! # Ok::<(), flspec::secagg::SecAggError>(())
//! ```

use std::collections::HashMap;

use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::{DefaultIsZeroes, Zeroize, ZeroizeOnDrop, Zeroizing};

use super::error::{Result, SecAggError};

/// Length of the secrets this module shares (X25519 secret keys and mask seeds).
pub const SECRET_LEN: usize = 32;

/// The field a sharing lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ShamirField {
    /// GF(2^8), polynomial 0x11d; at most 255 shares; 32-byte shares.
    Gf256,
    /// GF(2^61 - 1); 64-byte shares.
    Mersenne61,
}

impl ShamirField {
    /// The largest number of shares (and so of share holders) the field supports.
    pub fn max_shares(self) -> usize {
        match self {
            Self::Gf256 => 255,
            Self::Mersenne61 => u32::MAX as usize,
        }
    }

    /// Byte length of one share's `y` part for a 32-byte secret.
    pub fn share_len(self) -> usize {
        match self {
            Self::Gf256 => SECRET_LEN,
            Self::Mersenne61 => 8 * (SECRET_LEN / 4),
        }
    }

    /// The smallest field that holds `shares` shares.
    pub fn for_shares(shares: usize) -> Self {
        if shares <= Self::Gf256.max_shares() {
            Self::Gf256
        } else {
            Self::Mersenne61
        }
    }
}

/// One share: the evaluation point `x` (1-based) and the encoded values `y`.
///
/// Wiped on drop; its `Debug` never prints `y`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretShare {
    x: u32,
    y: Vec<u8>,
}

impl core::fmt::Debug for SecretShare {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SecretShare")
            .field("x", &self.x)
            .field("y", &"<redacted>")
            .finish()
    }
}

impl SecretShare {
    /// Builds a share from its parts (for instance, a revealed share received off the wire).
    pub fn new(x: u32, y: Vec<u8>) -> Self {
        Self { x, y }
    }

    /// The evaluation point (1-based).
    pub fn x(&self) -> u32 {
        self.x
    }

    /// The encoded share values.
    ///
    /// # Security
    /// Secret material: send it only inside an encrypted share or an unmasking response.
    pub fn y(&self) -> &[u8] {
        &self.y
    }
}

// ---------------------------------------------------------------- fields

trait Field: Copy + Default + PartialEq + DefaultIsZeroes {
    const ZERO: Self;
    const ONE: Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    /// Inverse of a nonzero element.
    fn inv(self) -> Self;
    fn random(rng: &mut (impl RngCore + CryptoRng)) -> Self;
    fn from_x(x: u32) -> Self;
    /// Secret bytes to field elements.
    fn encode(secret: &[u8; SECRET_LEN]) -> Vec<Self>;
    fn decode(elems: &[Self]) -> Zeroizing<[u8; SECRET_LEN]>;
    fn to_share_bytes(elems: &[Self]) -> Vec<u8>;
    fn from_share_bytes(bytes: &[u8]) -> Result<Vec<Self>>;
}

const fn gf256_tables() -> ([u8; 512], [u8; 256]) {
    let mut exp = [0u8; 512];
    let mut log = [0u8; 256];
    let mut x: u16 = 1;
    let mut i = 0;
    while i < 255 {
        exp[i] = x as u8;
        exp[i + 255] = x as u8;
        log[x as usize] = i as u8;
        x <<= 1;
        if x & 0x100 != 0 {
            x ^= 0x11d;
        }
        i += 1;
    }
    exp[510] = exp[0];
    exp[511] = exp[1];
    (exp, log)
}

const GF_TABLES: ([u8; 512], [u8; 256]) = gf256_tables();
static GF_EXP: [u8; 512] = GF_TABLES.0;
static GF_LOG: [u8; 256] = GF_TABLES.1;

#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Gf256(u8);
impl DefaultIsZeroes for Gf256 {}

impl Field for Gf256 {
    const ZERO: Self = Self(0);
    const ONE: Self = Self(1);
    fn add(self, o: Self) -> Self {
        Self(self.0 ^ o.0)
    }
    fn sub(self, o: Self) -> Self {
        Self(self.0 ^ o.0)
    }
    fn mul(self, o: Self) -> Self {
        if self.0 == 0 || o.0 == 0 {
            return Self(0);
        }
        Self(GF_EXP[GF_LOG[self.0 as usize] as usize + GF_LOG[o.0 as usize] as usize])
    }
    fn inv(self) -> Self {
        debug_assert!(self.0 != 0, "inverse of zero");
        Self(GF_EXP[255 - GF_LOG[self.0 as usize] as usize])
    }
    fn random(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut b = [0u8; 1];
        rng.fill_bytes(&mut b);
        Self(b[0])
    }
    fn from_x(x: u32) -> Self {
        debug_assert!((1..=255).contains(&x), "x checked by the caller");
        Self(x as u8)
    }
    fn encode(secret: &[u8; SECRET_LEN]) -> Vec<Self> {
        secret.iter().map(|&b| Self(b)).collect()
    }
    fn decode(elems: &[Self]) -> Zeroizing<[u8; SECRET_LEN]> {
        let mut out = Zeroizing::new([0u8; SECRET_LEN]);
        for (o, e) in out.iter_mut().zip(elems) {
            *o = e.0;
        }
        out
    }
    fn to_share_bytes(elems: &[Self]) -> Vec<u8> {
        elems.iter().map(|e| e.0).collect()
    }
    fn from_share_bytes(bytes: &[u8]) -> Result<Vec<Self>> {
        Ok(bytes.iter().map(|&b| Self(b)).collect())
    }
}

const P61: u64 = (1 << 61) - 1;

#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct M61(u64);
impl DefaultIsZeroes for M61 {}

impl M61 {
    fn reduce128(v: u128) -> u64 {
        // v < p^2 < 2^122, so hi < 2^61 and lo + hi < 2^62; 2^61 = 1 (mod p).
        let lo = (v as u64) & P61;
        let hi = (v >> 61) as u64;
        let s = lo + hi;
        let s = (s & P61) + (s >> 61);
        if s >= P61 { s - P61 } else { s }
    }
}

impl Field for M61 {
    const ZERO: Self = Self(0);
    const ONE: Self = Self(1);
    fn add(self, o: Self) -> Self {
        let s = self.0 + o.0;
        Self(if s >= P61 { s - P61 } else { s })
    }
    fn sub(self, o: Self) -> Self {
        Self(if self.0 >= o.0 {
            self.0 - o.0
        } else {
            self.0 + P61 - o.0
        })
    }
    fn mul(self, o: Self) -> Self {
        Self(Self::reduce128(self.0 as u128 * o.0 as u128))
    }
    fn inv(self) -> Self {
        debug_assert!(self.0 != 0, "inverse of zero");
        // Fermat: a^(p-2).
        let mut result = Self::ONE;
        let mut base = self;
        let mut e = P61 - 2;
        while e > 0 {
            if e & 1 == 1 {
                result = result.mul(base);
            }
            base = base.mul(base);
            e >>= 1;
        }
        result
    }
    fn random(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        // Rejection sampling: uniform in [0, p), zero included.
        loop {
            let v = rng.next_u64() & P61;
            if v < P61 {
                return Self(v);
            }
        }
    }
    fn from_x(x: u32) -> Self {
        Self(u64::from(x))
    }
    fn encode(secret: &[u8; SECRET_LEN]) -> Vec<Self> {
        secret
            .chunks_exact(4)
            .map(|c| Self(u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))))
            .collect()
    }
    fn decode(elems: &[Self]) -> Zeroizing<[u8; SECRET_LEN]> {
        let mut out = Zeroizing::new([0u8; SECRET_LEN]);
        for (o, e) in out.chunks_exact_mut(4).zip(elems) {
            // A valid sharing of a 32-bit limb interpolates to a value below 2^32.
            o.copy_from_slice(&(e.0 as u32).to_le_bytes());
        }
        out
    }
    fn to_share_bytes(elems: &[Self]) -> Vec<u8> {
        elems.iter().flat_map(|e| e.0.to_le_bytes()).collect()
    }
    fn from_share_bytes(bytes: &[u8]) -> Result<Vec<Self>> {
        bytes
            .chunks_exact(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                let v = u64::from_le_bytes(w);
                w.zeroize();
                if v < P61 {
                    Ok(Self(v))
                } else {
                    Err(SecAggError::shamir(
                        "share value out of the field range; the share is corrupt",
                    ))
                }
            })
            .collect()
    }
}

// ---------------------------------------------------------------- split / recover

fn check_params(field: ShamirField, threshold: usize, shares: usize) -> Result<()> {
    if threshold < 2 {
        return Err(SecAggError::shamir(format!(
            "threshold {threshold} is below 2: with 0 or 1 every share is the secret itself; use a threshold of at least 2"
        )));
    }
    if threshold > shares {
        return Err(SecAggError::shamir(format!(
            "threshold {threshold} is above the number of shares {shares}; the secret could never be rebuilt"
        )));
    }
    if shares > field.max_shares() {
        return Err(SecAggError::shamir(format!(
            "{shares} shares requested, but {field:?} allows at most {}; use ShamirField::Mersenne61",
            field.max_shares()
        )));
    }
    Ok(())
}

fn split_in<F: Field>(
    secret: &[u8; SECRET_LEN],
    threshold: usize,
    shares: usize,
    rng: &mut (impl RngCore + CryptoRng),
) -> Vec<SecretShare> {
    let consts = Zeroizing::new(F::encode(secret));
    // coeffs[j * threshold + i]: coefficient of x^i for element j; every non-constant coefficient
    // is uniform over the whole field, zero included.
    let mut coeffs: Zeroizing<Vec<F>> =
        Zeroizing::new(Vec::with_capacity(consts.len() * threshold));
    for &c in consts.iter() {
        coeffs.push(c);
        for _ in 1..threshold {
            coeffs.push(F::random(rng));
        }
    }
    let mut ys: Zeroizing<Vec<F>> = Zeroizing::new(vec![F::ZERO; consts.len()]);
    (1..=shares as u32)
        .map(|x| {
            let fx = F::from_x(x);
            for (j, y) in ys.iter_mut().enumerate() {
                let poly = &coeffs[j * threshold..(j + 1) * threshold];
                // Horner, highest degree first.
                *y = poly
                    .iter()
                    .rev()
                    .fold(F::ZERO, |acc, &c| acc.mul(fx).add(c));
            }
            SecretShare {
                x,
                y: F::to_share_bytes(&ys),
            }
        })
        .collect()
}

/// Splits a 32-byte secret into `shares` shares with evaluation points `1..=shares`, any
/// `threshold` of which rebuild it.
///
/// # Errors
/// [`SecAggError::Shamir`] unless `2 <= threshold <= shares <= field.max_shares()`.
///
/// # Security
/// Every non-constant coefficient is drawn uniformly from the field (zero included) from `rng`;
/// the coefficients are wiped before returning.
pub fn split(
    field: ShamirField,
    secret: &[u8; SECRET_LEN],
    threshold: usize,
    shares: usize,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<SecretShare>> {
    check_params(field, threshold, shares)?;
    Ok(match field {
        ShamirField::Gf256 => split_in::<Gf256>(secret, threshold, shares, rng),
        ShamirField::Mersenne61 => split_in::<M61>(secret, threshold, shares, rng),
    })
}

fn lagrange_at_zero<F: Field>(xs: &[u32]) -> Vec<F> {
    xs.iter()
        .map(|&xi| {
            let fi = F::from_x(xi);
            let (num, den) =
                xs.iter()
                    .filter(|&&xj| xj != xi)
                    .fold((F::ONE, F::ONE), |(num, den), &xj| {
                        let fj = F::from_x(xj);
                        (num.mul(fj), den.mul(fj.sub(fi)))
                    });
            num.mul(den.inv())
        })
        .collect()
}

fn combine<F: Field>(coeffs: &[F], shares: &[&SecretShare]) -> Result<Zeroizing<[u8; SECRET_LEN]>> {
    let mut acc: Zeroizing<Vec<F>> = Zeroizing::new(Vec::new());
    for (l, share) in coeffs.iter().zip(shares) {
        let ys = Zeroizing::new(F::from_share_bytes(share.y())?);
        if acc.is_empty() {
            acc.resize(ys.len(), F::ZERO);
        }
        for (a, &y) in acc.iter_mut().zip(ys.iter()) {
            *a = a.add(l.mul(y));
        }
    }
    Ok(F::decode(&acc))
}

/// Checks a share set and returns the `threshold` shares to use, sorted by `x`.
fn select(
    field: ShamirField,
    shares: &[SecretShare],
    threshold: usize,
) -> Result<Vec<&SecretShare>> {
    check_params(field, threshold, threshold)?;
    if shares.len() < threshold {
        return Err(SecAggError::shamir(format!(
            "{} share(s) given, {threshold} needed",
            shares.len()
        )));
    }
    let mut sorted: Vec<&SecretShare> = shares.iter().collect();
    sorted.sort_by_key(|s| s.x);
    for w in sorted.windows(2) {
        if w[0].x == w[1].x {
            return Err(SecAggError::shamir(format!(
                "duplicate share index {}; each holder's share may be used once",
                w[0].x
            )));
        }
    }
    for s in &sorted {
        if s.x == 0 || s.x as usize > field.max_shares() {
            return Err(SecAggError::shamir(format!(
                "unknown share index {}; indices run from 1 to {}",
                s.x,
                field.max_shares()
            )));
        }
        if s.y.len() != field.share_len() {
            return Err(SecAggError::shamir(format!(
                "share {} has {} bytes, expected {}",
                s.x,
                s.y.len(),
                field.share_len()
            )));
        }
    }
    sorted.truncate(threshold);
    Ok(sorted)
}

/// Rebuilds a secret from at least `threshold` shares (the `threshold` with the smallest
/// indices are used).
///
/// # Errors
/// [`SecAggError::Shamir`] on fewer than `threshold` shares, a threshold below 2, duplicate
/// indices, an index of 0 or beyond the field, or a share of the wrong length.
pub fn recover(
    field: ShamirField,
    shares: &[SecretShare],
    threshold: usize,
) -> Result<Zeroizing<[u8; SECRET_LEN]>> {
    Recoverer::new(field, threshold).recover(shares)
}

#[derive(Clone)]
enum Coeffs {
    Gf(Vec<Gf256>),
    M61(Vec<M61>),
}

/// Rebuilds many secrets, caching the Lagrange coefficients of each set of share indices (on
/// the full graph every secret of a round uses the same indices, so rebuilding costs one
/// pass over the shares instead of a quadratic solve each time).
pub struct Recoverer {
    field: ShamirField,
    threshold: usize,
    cache: HashMap<Vec<u32>, Coeffs>,
}

impl core::fmt::Debug for Recoverer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Recoverer")
            .field("field", &self.field)
            .field("threshold", &self.threshold)
            .field("cached_index_sets", &self.cache.len())
            .finish()
    }
}

impl Recoverer {
    /// A recoverer for one field and threshold.
    pub fn new(field: ShamirField, threshold: usize) -> Self {
        Self {
            field,
            threshold,
            cache: HashMap::new(),
        }
    }

    /// Rebuilds one secret; see [`recover`].
    ///
    /// # Errors
    /// As [`recover`].
    pub fn recover(&mut self, shares: &[SecretShare]) -> Result<Zeroizing<[u8; SECRET_LEN]>> {
        let chosen = select(self.field, shares, self.threshold)?;
        let xs: Vec<u32> = chosen.iter().map(|s| s.x).collect();
        let field = self.field;
        let coeffs = self.cache.entry(xs).or_insert_with_key(|xs| match field {
            ShamirField::Gf256 => Coeffs::Gf(lagrange_at_zero::<Gf256>(xs)),
            ShamirField::Mersenne61 => Coeffs::M61(lagrange_at_zero::<M61>(xs)),
        });
        match coeffs {
            Coeffs::Gf(c) => combine(c, &chosen),
            Coeffs::M61(c) => combine(c, &chosen),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gf256_inverse_table_is_consistent() {
        for a in 1..=255u8 {
            assert_eq!(Gf256(a).mul(Gf256(a).inv()).0, 1, "a = {a}");
        }
        // 0x11d with generator 2: 2^8 = 0x1d.
        assert_eq!(Gf256(0x80).mul(Gf256(2)).0, 0x1d);
    }

    #[test]
    fn m61_arithmetic() {
        let a = M61(P61 - 1);
        assert_eq!(a.mul(a).0, 1); // (-1)^2
        assert_eq!(a.add(M61(1)).0, 0);
        assert_eq!(M61(0).sub(M61(1)).0, a.0);
        for v in [2u64, 3, 12345, P61 - 2] {
            assert_eq!(M61(v).mul(M61(v).inv()).0, 1);
        }
    }
}
