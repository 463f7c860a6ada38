use crate::{ComponentError, ComponentInfo};

/// Row-major matrix of `rows × cols` values.
#[derive(Debug, Clone, Copy)]
pub struct ProbeInput<'a> {
    pub values: &'a [f32],
    pub rows: usize,
    pub cols: usize,
}

impl<'a> ProbeInput<'a> {
    pub fn new(values: &'a [f32], rows: usize, cols: usize) -> Result<Self, ComponentError> {
        if values.len() != rows * cols {
            return Err(ComponentError::Shape {
                component: "probe-input".into(),
                detail: format!("{} values for a {rows}×{cols} matrix", values.len()),
            });
        }
        Ok(Self { values, rows, cols })
    }

    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.values[i * self.cols..(i + 1) * self.cols]
    }
}

/// A downstream estimator from embeddings to one scalar property per object.
pub trait Probe: Send {
    fn info(&self) -> ComponentInfo;

    /// Fits on training embeddings `x` (one row per object) and targets `y`.
    fn fit(&mut self, x: ProbeInput<'_>, y: &[f32]) -> Result<(), ComponentError>;

    /// Predicts one value per row of `x`.
    fn predict(&self, x: ProbeInput<'_>) -> Result<Vec<f32>, ComponentError>;
}
