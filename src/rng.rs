//! SplitMix64 (Steele, Lea & Flood 2014) and the draws the synthetic data and the simulation
//! need: tiny, fast and good enough for simulation; our own code, so seeded output never changes
//! with a dependency's version.

#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// An independent stream for `(seed, a, b)`, so streams can be drawn in any order.
    pub fn for_stream(seed: u64, a: u64, b: u64) -> Self {
        let mut rng = Rng(seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
        rng.next_u64();
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Poisson (Knuth's product method; fine for the small means used here).
    pub fn poisson(&mut self, mean: f64) -> u32 {
        let limit = (-mean).exp();
        let mut k = 0;
        let mut p = self.uniform();
        while p > limit && k < 1000 {
            k += 1;
            p *= self.uniform();
        }
        k
    }

    /// Poisson for any mean: exact below 50, the normal approximation (rounded, at least 0)
    /// above, where Knuth's method would underflow.
    pub fn poisson_large(&mut self, mean: f64) -> u64 {
        if mean < 50.0 {
            return u64::from(self.poisson(mean));
        }
        (mean + mean.sqrt() * self.normal()).round().max(0.0) as u64
    }

    /// Exponential with mean 1.
    pub fn exponential(&mut self) -> f64 {
        -(1.0 - self.uniform()).ln()
    }

    /// Index drawn with probability proportional to `weights`.
    pub fn pick(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.uniform() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}
