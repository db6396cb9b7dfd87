//! Training support for RepOptimizers on Burn.
//!
//! [`data`]: datasets read from real files (ImageNet-style image folders, CIFAR-10/100 binary
//! batches, IDX files such as MNIST / Fashion-MNIST), seeded augmentation, and the Burn batcher
//! and data-loader helpers that feed Burn's `Learner`.

#![warn(missing_docs)]

pub mod data;
