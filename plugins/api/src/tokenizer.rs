use crate::{ComponentError, ComponentInfo, Observation};

/// Turns one raw observation into the flat model input of one object.
///
/// The output has `output_shape().iter().product()` values, row-major; the matching
/// [`crate::ModalityEncoder`] receives a batch of them as a `(batch, len)` tensor.
pub trait Tokenizer: Send + Sync {
    fn info(&self) -> ComponentInfo;

    /// Shape of one object's model input (without the batch axis).
    fn output_shape(&self) -> Vec<usize>;

    /// Writes the model input of `obs` into `out` (`out.len()` equals the product of
    /// [`Tokenizer::output_shape`]). Errors name the object.
    fn tokenize(&self, obs: &Observation<'_>, out: &mut [f32]) -> Result<(), ComponentError>;
}
