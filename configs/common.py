"""Config fields every model shares."""


def evaluation_suite() -> dict:
  """config.eval fields of the distribution metrics and the judge (jaxpr_gan/evaluation_suite)."""
  return dict(
      # pytorch-fid's pt_inception-2015-12-05-6726825d.pth; '' skips FID, KID and IS.
      inception_weights='',
      fid_reference_split='test',  # the real images FID compares with
      fid_max_images=10_000,  # at most this many generated (and real) images
      kid_subsets=100, kid_subset_size=1000,
      stats_cache_dir='',  # real images' features; '' = ~/.cache/jaxpr_gan/fid_features
      judge_dir='',  # a judge trained by python -m jaxpr_gan.judge; '' skips the judge
      # LPIPS (input to output): torchvision's vgg16 .pth and lpips's weights/v0.1/vgg.pth.
      lpips_backbone='', lpips_linear='',
  )
