//! An [`ObjectSource`] over a survey held in memory (the synthetic survey, or a survey
//! safetensors file).

use super::{DataError, ObjectReader, ObjectSource};
use crate::data::catalog::Survey;

pub struct MemorySource {
    survey: Survey,
    format: &'static str,
}

impl MemorySource {
    pub fn new(survey: Survey, format: &'static str) -> Self {
        Self { survey, format }
    }

    pub fn survey(&self) -> &Survey {
        &self.survey
    }
}

impl ObjectSource for MemorySource {
    fn photometry(&self) -> Option<&crate::data::catalog::Photometry> {
        self.survey.photometry.as_ref()
    }
    fn describe(&self) -> String {
        self.survey.provenance.clone()
    }
    fn len(&self) -> usize {
        self.survey.len()
    }
    fn object_ids(&self) -> &[String] {
        &self.survey.object_ids
    }
    fn bands(&self) -> &[String] {
        &self.survey.bands
    }
    fn image_size(&self) -> usize {
        self.survey.image_size
    }
    fn pixel_scale(&self) -> f32 {
        self.survey.pixel_scale
    }
    fn wavelength(&self) -> &[f32] {
        &self.survey.wavelength
    }
    fn truth(&self) -> &[(String, Vec<f32>)] {
        &self.survey.truth
    }
    fn reader(&self) -> Result<Box<dyn ObjectReader + '_>, DataError> {
        Ok(Box::new(MemoryReader(&self.survey)))
    }
    fn content_hash(&self) -> Result<String, DataError> {
        Ok(self.survey.content_hash())
    }
    fn format(&self) -> &'static str {
        self.format
    }
}

struct MemoryReader<'a>(&'a Survey);

impl ObjectReader for MemoryReader<'_> {
    fn read(&mut self, i: usize, image: &mut [f32], flux: &mut [f32], ivar: &mut [f32]) -> Result<(), DataError> {
        image.copy_from_slice(self.0.image(i));
        let (f, w) = self.0.spectrum(i);
        flux.copy_from_slice(f);
        ivar.copy_from_slice(w);
        Ok(())
    }
}
