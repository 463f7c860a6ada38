//! Two-stage AstroCLIP trains only the cross-attention heads: `freeze_backbone` must keep every
//! backbone weight out of the optimiser — also after a checkpoint is saved and loaded into a
//! frozen model (resume) — while the head still learns.

use astroclip_builtin::resnet::ResNetEncoderConfig;
use astroclip_builtin::specformer::SpecFormerConfig;
use astroclip_plugin_api::ModalityEncoder;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// Two AdamW steps on `sum(encode(x)²)`; returns the trained module.
fn steps<M: Module + ModalityEncoder>(mut m: M, x: &Tensor<2>) -> M {
    let mut optim = AdamWConfig::new().init();
    for _ in 0..2 {
        let loss = m.encode(x.clone()).powi_scalar(2).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        m = optim.step(1e-2, m, grads);
    }
    m
}

#[test]
fn frozen_resnet_backbone_stays_put_and_the_head_learns() {
    let dev = Device::flex().autodiff();
    dev.seed(1);
    let enc = ResNetEncoderConfig::new(16, 8).with_channels(vec![8, 8]).with_dropout(0.0).init(&dev).freeze_backbone();
    let x = Tensor::<2>::random([3, 3 * 16 * 16], Distribution::Normal(0.0, 1.0), &dev);
    let x4 = x.clone().reshape([3, 3, 16, 16]);
    let (tokens0, out0) = (values(enc.tokens(x4.clone())), values(enc.encode(x.clone())));
    let enc = steps(enc, &x);
    assert_eq!(values(enc.tokens(x4.clone())), tokens0, "backbone moved");
    assert_ne!(values(enc.encode(x.clone())), out0, "head did not learn");

    // Resume: the checkpoint loaded into a (differently initialised) frozen encoder.
    let path = std::env::temp_dir().join(format!("freeze-resnet-{}", std::process::id()));
    enc.clone().save_file(&path).unwrap();
    let loaded = ResNetEncoderConfig::new(16, 8)
        .with_channels(vec![8, 8])
        .with_dropout(0.0)
        .init(&dev)
        .freeze_backbone()
        .try_load_file(path.with_extension("bpk"))
        .unwrap();
    let tokens1 = values(loaded.tokens(x4.clone()));
    assert_eq!(tokens1, values(enc.tokens(x4.clone())));
    let loaded = steps(loaded, &x);
    assert_eq!(values(loaded.tokens(x4)), tokens1, "backbone moved after a resume");
    let _ = std::fs::remove_file(path.with_extension("bpk"));
}

#[test]
fn frozen_specformer_backbone_stays_put_and_the_head_learns() {
    let dev = Device::flex().autodiff();
    dev.seed(2);
    let cfg = SpecFormerConfig::new(5, 4, 8).with_d_model(8).with_n_heads(2).with_head_heads(2).with_dropout(0.0);
    let enc = cfg.init(&dev).freeze_backbone();
    let x = Tensor::<2>::random([3, 5 * 4], Distribution::Normal(0.0, 1.0), &dev);
    let x3 = x.clone().reshape([3, 5, 4]);
    let (tokens0, out0) = (values(enc.tokens(x3.clone())), values(enc.encode(x.clone())));
    let enc = steps(enc, &x);
    assert_eq!(values(enc.tokens(x3.clone())), tokens0, "backbone moved");
    assert_ne!(values(enc.encode(x.clone())), out0, "head did not learn");
    // Unfrozen, the same steps move the backbone: the test can tell.
    let free = cfg.init(&dev);
    let before = values(free.tokens(x3.clone()));
    let free = steps(free, &x);
    assert_ne!(values(free.tokens(x3)), before);
}
