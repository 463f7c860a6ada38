//! Pairing two modalities: by object id, or by sky position within a radius (1″ by default),
//! nearest neighbour, each object used at most once.

use std::collections::HashMap;

/// Angular separation in arcsec (haversine, stable at small angles).
pub fn separation_arcsec(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    let (d1, d2) = (dec1.to_radians(), dec2.to_radians());
    let dra = (ra2 - ra1).to_radians();
    let ddec = d2 - d1;
    let a = (ddec / 2.0).sin().powi(2) + d1.cos() * d2.cos() * (dra / 2.0).sin().powi(2);
    2.0 * a.sqrt().min(1.0).asin().to_degrees() * 3600.0
}

/// `(i, j)` pairs where `a[i] == b[j]`; ids present on one side only are returned separately.
pub fn by_id(a: &[String], b: &[String]) -> (Vec<(usize, usize)>, Vec<usize>, Vec<usize>) {
    let index: HashMap<&str, usize> = b.iter().enumerate().map(|(j, id)| (id.as_str(), j)).collect();
    let mut pairs = Vec::new();
    let mut only_a = Vec::new();
    let mut used = vec![false; b.len()];
    for (i, id) in a.iter().enumerate() {
        match index.get(id.as_str()) {
            Some(&j) if !used[j] => {
                used[j] = true;
                pairs.push((i, j));
            }
            _ => only_a.push(i),
        }
    }
    let only_b = (0..b.len()).filter(|&j| !used[j]).collect();
    (pairs, only_a, only_b)
}

/// Nearest-neighbour sky match within `radius_arcsec`; declination-sorted sweep, so
/// O((n + m) log m + matches). Returns pairs and the unmatched indices of each side.
pub fn by_position(
    a: &[(f64, f64)],
    b: &[(f64, f64)],
    radius_arcsec: f64,
) -> (Vec<(usize, usize)>, Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..b.len()).collect();
    order.sort_by(|&x, &y| b[x].1.total_cmp(&b[y].1));
    let decs: Vec<f64> = order.iter().map(|&j| b[j].1).collect();
    let r_deg = radius_arcsec / 3600.0;
    // Candidates (separation, i, j), then greedy by separation so each object pairs once.
    let mut cands = Vec::new();
    for (i, &(ra, dec)) in a.iter().enumerate() {
        let lo = decs.partition_point(|&d| d < dec - r_deg);
        for (k, &d) in decs.iter().enumerate().skip(lo) {
            if d > dec + r_deg {
                break;
            }
            let j = order[k];
            let s = separation_arcsec(ra, dec, b[j].0, b[j].1);
            if s <= radius_arcsec {
                cands.push((s, i, j));
            }
        }
    }
    cands.sort_by(|x, y| x.0.total_cmp(&y.0));
    let (mut ua, mut ub) = (vec![false; a.len()], vec![false; b.len()]);
    let mut pairs = Vec::new();
    for (_, i, j) in cands {
        if !ua[i] && !ub[j] {
            ua[i] = true;
            ub[j] = true;
            pairs.push((i, j));
        }
    }
    pairs.sort();
    let only_a = (0..a.len()).filter(|&i| !ua[i]).collect();
    let only_b = (0..b.len()).filter(|&j| !ub[j]).collect();
    (pairs, only_a, only_b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separation_matches_known_values() {
        // 1 arcsec in declination; 1 arcsec of RA at dec 60° is 0.5 arcsec on the sky.
        assert!((separation_arcsec(10.0, 0.0, 10.0, 1.0 / 3600.0) - 1.0).abs() < 1e-9);
        assert!((separation_arcsec(10.0, 60.0, 10.0 + 1.0 / 3600.0, 60.0) - 0.5).abs() < 1e-6);
        // Wraps at RA 0/360.
        assert!((separation_arcsec(359.9999, 0.0, 0.0001, 0.0) - 0.72).abs() < 1e-6);
    }

    #[test]
    fn position_match_pairs_within_radius_once() {
        let a = [(150.0, 2.0), (150.001, 2.0), (10.0, -5.0)];
        let b = [(150.0 + 0.5 / 3600.0, 2.0), (10.0, -5.0 + 2.0 / 3600.0), (150.001, 2.0 + 0.2 / 3600.0)];
        let (pairs, only_a, only_b) = by_position(&a, &b, 1.0);
        assert_eq!(pairs, vec![(0, 0), (1, 2)]);
        assert_eq!(only_a, vec![2]);
        assert_eq!(only_b, vec![1]);
    }

    #[test]
    fn id_match_reports_one_sided_ids() {
        let a: Vec<String> = ["1", "2", "3"].iter().map(|s| s.to_string()).collect();
        let b: Vec<String> = ["3", "4", "1"].iter().map(|s| s.to_string()).collect();
        let (pairs, oa, ob) = by_id(&a, &b);
        assert_eq!(pairs, vec![(0, 2), (2, 0)]);
        assert_eq!((oa, ob), (vec![1], vec![1]));
    }
}
