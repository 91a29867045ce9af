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


def data_sources() -> dict:
  """config.data fields of the real-data sources (input_pipeline/sources.py, records.py)."""
  return dict(
      on_error='stop',  # a bad line or file: 'stop' with its name and line, or 'skip' and list
      split='folders',  # 'folders' | 'file' | 'column' | 'fraction' | 'identity'
      split_file='', test_fraction=0.2, split_seed=0,
      class_names=(),  # the classes in order; () = the sorted labels found
      csv='', test_csv='',  # source 'csv': path,label[,intensity][,split][,identity]
      attribute_file='', image_dir='', attributes=(),  # source 'attributes' (CelebA)
      test_root='',  # source 'filename': root (and test_root with split 'folders')
      filename_pattern='kdef', filename_filter='',  # a preset or a regex; 'angle=S'
      tfds_name='', tfds_data_dir='', tfds_train_split='train', tfds_test_split='test',
      tfds_image_key='image', tfds_label_key='label',
      array_record_dir='',  # source 'array_record': the output of input_pipeline.prepare
  )
