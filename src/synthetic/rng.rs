//! Counter-based randomness: every draw is a pure function of the run's seed
//! and the draw's coordinates (object, visit, purpose...). Nothing is carried
//! from one alert to the next, so any alert, and any object's whole history,
//! can be recomputed on any host in any order and comes out the same.

/// SplitMix64's finaliser: a bijective, well-mixed step.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A 64-bit hash of the seed and a draw's coordinates.
pub fn hash(seed: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(mix(seed), |h, &p| mix(h ^ mix(p)))
}

/// A uniform number in [0, 1) from a hash.
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// A uniform number in [lo, hi) for the given coordinates.
pub fn uniform(seed: u64, parts: &[u64], lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * unit(hash(seed, parts))
}

/// A standard normal number for the given coordinates (Box-Muller).
pub fn normal(seed: u64, parts: &[u64]) -> f64 {
    let h = hash(seed, parts);
    let u = unit(mix(h)).max(1e-300);
    let v = unit(mix(h ^ 0x5555_5555_5555_5555));
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Many draws from one starting point (pixel noise): a fast sequential
/// generator (xorshift64*), seeded from a hash so that it too is a pure
/// function of its coordinates.
pub struct Stream(u64);

impl Stream {
    pub fn new(seed: u64, parts: &[u64]) -> Self {
        Self(hash(seed, parts) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        unit(self.next_u64())
    }

    /// An approximately normal number, mean 0 and variance 1: the sum of
    /// four 16-bit uniforms (Irwin-Hall), scaled. Pixel noise needs the
    /// right moments, not the far tails, and this costs one draw instead of
    /// a logarithm and a sine (a 63x63 cutout takes 8,000 of them).
    pub fn pixel_noise(&mut self) -> f64 {
        let x = self.next_u64();
        let sum = (x & 0xFFFF) + ((x >> 16) & 0xFFFF) + ((x >> 32) & 0xFFFF) + (x >> 48);
        // Four uniforms on [0, 1) have mean 2 and variance 1/3.
        (sum as f64 / 65_536.0 - 2.0) * 3f64.sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_pure_and_differ_by_coordinate() {
        assert_eq!(hash(7, &[1, 2]), hash(7, &[1, 2]));
        assert_ne!(hash(7, &[1, 2]), hash(7, &[2, 1]));
        assert_ne!(hash(7, &[1, 2]), hash(8, &[1, 2]));
    }

    #[test]
    fn uniform_and_normal_have_their_moments() {
        let n = 20_000u64;
        let mean_u: f64 = (0..n).map(|i| uniform(1, &[i], 0.0, 1.0)).sum::<f64>() / n as f64;
        assert!((mean_u - 0.5).abs() < 0.01, "{mean_u}");
        let xs: Vec<f64> = (0..n).map(|i| normal(1, &[i])).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
        let mut s = Stream::new(3, &[4]);
        let zs: Vec<f64> = (0..n).map(|_| s.pixel_noise()).collect();
        let mean = zs.iter().sum::<f64>() / n as f64;
        let var = zs.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
