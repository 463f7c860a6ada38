//! Tokenized, in-memory training data: every object passed once through both tokenizers
//! (in parallel), then sliced into batches.

use astroclip_plugin_api::{ImageView, Observation, SpectrumView, Tokenizer};
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use crate::survey::Survey;

#[derive(Debug, Clone)]
pub struct TokenizedSet {
    pub n: usize,
    pub image_len: usize,
    pub spectrum_len: usize,
    pub image: Vec<f32>,
    pub spectrum: Vec<f32>,
}

pub fn tokenize(
    survey: &Survey,
    image_tok: &dyn Tokenizer,
    spectrum_tok: &dyn Tokenizer,
) -> Result<TokenizedSet, astroclip_plugin_api::ComponentError> {
    let image_len: usize = image_tok.output_shape().iter().product();
    let spectrum_len: usize = spectrum_tok.output_shape().iter().product();
    let n = survey.len();
    let mut image = vec![0f32; n * image_len];
    let mut spectrum = vec![0f32; n * spectrum_len];
    image.par_chunks_mut(image_len).zip(spectrum.par_chunks_mut(spectrum_len)).enumerate().try_for_each(
        |(i, (img_out, spec_out))| {
            let img = ImageView {
                object_id: &survey.object_ids[i],
                height: survey.image_size,
                width: survey.image_size,
                bands: &survey.bands,
                flux: survey.image(i),
                pixel_scale: survey.pixel_scale,
            };
            image_tok.tokenize(&Observation::Image(img), img_out)?;
            let (flux, ivar) = survey.spectrum(i);
            let sp = SpectrumView { object_id: &survey.object_ids[i], wavelength: &survey.wavelength, flux, ivar };
            spectrum_tok.tokenize(&Observation::Spectrum(sp), spec_out)
        },
    )?;
    Ok(TokenizedSet { n, image_len, spectrum_len, image, spectrum })
}

fn gather(src: &[f32], len: usize, idx: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(idx.len() * len);
    for &i in idx {
        out.extend_from_slice(&src[i * len..(i + 1) * len]);
    }
    out
}

impl TokenizedSet {
    /// `(images, spectra)` tensors `(batch, len)` of the objects `idx`.
    pub fn batch(&self, idx: &[usize], device: &Device) -> (Tensor<2>, Tensor<2>) {
        let b = idx.len();
        let images =
            Tensor::from_data(TensorData::new(gather(&self.image, self.image_len, idx), [b, self.image_len]), device);
        let spectra = Tensor::from_data(
            TensorData::new(gather(&self.spectrum, self.spectrum_len, idx), [b, self.spectrum_len]),
            device,
        );
        (images, spectra)
    }
}
