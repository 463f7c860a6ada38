//! The AstroCLIP model: an image encoder and a spectrum encoder aligned by a contrastive loss,
//! assembled from components resolved by name (see [`crate::components`]).
//!
//! Reference: Parker, Lanusse et al. 2024, "AstroCLIP: a cross-modal foundation model for
//! galaxies", MNRAS 531, 4990; code at github.com/PolymathicAI/AstroCLIP.

use astroclip_plugin_api::{ContrastiveLoss, ModalityEncoder};
use burn::module::Module;
use burn::tensor::Tensor;

#[derive(Module, Debug)]
pub struct AstroClip<I: ModalityEncoder, S: ModalityEncoder, L: ContrastiveLoss> {
    pub image: I,
    pub spectrum: S,
    pub loss: L,
}

impl<I: ModalityEncoder, S: ModalityEncoder, L: ContrastiveLoss> AstroClip<I, S, L> {
    /// Contrastive loss of a batch of paired inputs.
    pub fn forward(&self, images: Tensor<2>, spectra: Tensor<2>) -> Tensor<1> {
        let a = self.image.encode(images);
        let b = self.spectrum.encode(spectra);
        self.loss.loss(a, b)
    }
}
