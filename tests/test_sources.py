"""Real-data sources on fixtures written here: CSV, attributes, file names, TFDS, ArrayRecord,
splits, error reporting, the prepare and inspect commands."""

import json
import os

import numpy as np
from PIL import Image
import pytest

from configs import stargan as stargan_config
from input_pipeline import inspect as inspect_lib
from input_pipeline import pipeline
from input_pipeline import prepare
from input_pipeline import records
from input_pipeline import sources
from jaxpr_gan import config_validation

COLOURS = {'angry': (200, 30, 30), 'happy': (30, 200, 30), 'sad': (30, 30, 200)}


def _png(path, colour, size=(12, 10), seed=0):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  rng = np.random.default_rng(seed)
  pixels = np.clip(np.array(colour) + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255)
  Image.fromarray(pixels.astype(np.uint8)).save(path)


def _config(**data):
  config = stargan_config.get_config('tiny')
  config.data.update(image_size=8, num_classes=0, num_workers=0, **data)
  config.batch_size = 4
  return config


@pytest.fixture
def csv_set(tmp_path):
  """6 good rows (two per class) and 4 bad ones on lines 8-11."""
  lines = ['path,label,intensity,split']
  for k, (label, colour) in enumerate(sorted(COLOURS.items()) * 2):
    _png(str(tmp_path / 'img' / f'{k}.png'), colour, seed=k)
    lines.append(f'img/{k}.png,{label},0.{k + 1},{"test" if k >= 3 else "train"}')
  lines += [
    'img/missing.png,happy,1.0,train',  # line 8: no such file
    'img/0.png,bored,1.0,train',  # line 9: unknown label
    'img/1.png,happy',  # line 10: malformed
    'img/2.png,sad,very,train',
  ]  # line 11: intensity not a number
  path = tmp_path / 'labels.csv'
  path.write_text('\n'.join(lines) + '\n')
  return str(path)


def test_csv_source_errors_name_file_and_line(csv_set):
  config = _config(source='csv', csv=csv_set, split='column', class_names=('angry', 'happy', 'sad'))
  with pytest.raises(sources.DataError, match=r'labels.csv:8: image file .*missing.png'):
    pipeline.make_source(config.data, 'train')
  config.data.on_error = 'skip'
  train = pipeline.make_source(config.data, 'train')
  test = pipeline.make_source(config.data, 'test')
  assert (len(train), len(test)) == (3, 3) and train.class_names == ('angry', 'happy', 'sad')
  assert list(train.labels()) == [0, 1, 2]
  np.testing.assert_allclose(train.intensities, [0.1, 0.2, 0.3])
  lines = [where.rsplit(':', 1)[1] for where, _ in train.problems]
  assert lines == ['8', '9', '10', '11']
  assert 'bored' in train.problems[1][1] and 'fields' in train.problems[2][1]
  listed = os.path.join(os.path.dirname(csv_set), 'run', 'data_problems_train.txt')
  assert sources.write_problems(train, listed) == 4
  with open(listed) as f:
    assert f.read().splitlines()[0].startswith(f'{csv_set}:8\t')
  batch = next(iter(pipeline.create_train_dataset(config, train)))
  assert batch['image'].shape == (4, 8, 8, 3) and batch['image'].dtype == np.uint8


def test_csv_classes_from_the_data_and_split_by_fraction(csv_set):
  config = _config(source='csv', csv=csv_set, split='fraction', test_fraction=0.5, on_error='skip')
  train, test = (pipeline.make_source(config.data, s) for s in ('train', 'test'))
  # Without a class list the classes are the sorted labels found ('bored' on line 9 too).
  assert train.class_names == test.class_names == ('angry', 'bored', 'happy', 'sad')
  assert len(train) + len(test) == 7 and len(test) == round(0.5 * 7)
  rows = lambda src: set(zip(src._paths, src.labels()))  # pylint: disable=protected-access
  assert not rows(train) & rows(test)
  config.data.update(split='folders', image_size=16)  # 16: the tiny D's smallest size
  with pytest.raises(config_validation.ConfigError, match='config.data.test_csv'):
    config_validation.validate(config, 1, ['angry', 'happy', 'sad'])


@pytest.fixture
def celeba(tmp_path):
  names = ['5_o_Clock_Shadow', 'Black_Hair', 'Blond_Hair', 'Male']
  rows = [
    ('000001.jpg', [-1, 1, -1, 1]),
    ('000002.jpg', [-1, -1, 1, -1]),
    ('000003.jpg', [1, -1, -1, 1]),  # neither hair colour: left out
    ('000004.jpg', [-1, 1, 1, -1]),
    ('000005.jpg', [-1, -1, 1, 1]),
  ]
  for k, (name, _) in enumerate(rows):
    _png(str(tmp_path / 'img_align_celeba' / name), (40 * k, 100, 100), seed=k)
  text = [str(len(rows)), ' '.join(names)]
  text += [f'{n} ' + ' '.join(f'{v:2d}' for v in vals) for n, vals in rows]
  text.append('000006.jpg 1 -1')  # line 8: malformed
  (tmp_path / 'list_attr_celeba.txt').write_text('\n'.join(text) + '\n')
  (tmp_path / 'list_eval_partition.txt').write_text(
    '000001.jpg 0\n000002.jpg 0\n000003.jpg 0\n000004.jpg 2\n000005.jpg 1\n'
  )
  return tmp_path


def test_celeba_attributes_and_split_file(celeba):
  config = _config(
    source='attributes',
    attribute_file=str(celeba / 'list_attr_celeba.txt'),
    image_dir=str(celeba / 'img_align_celeba'),
    attributes=('Black_Hair', 'Blond_Hair'),
    split='file',
    split_file=str(celeba / 'list_eval_partition.txt'),
  )
  with pytest.raises(sources.DataError, match=r'list_attr_celeba.txt:8: 2 values'):
    pipeline.make_source(config.data, 'train')
  config.data.on_error = 'skip'
  train = pipeline.make_source(config.data, 'train')
  test = pipeline.make_source(config.data, 'test')
  assert train.class_names == ('Black_Hair', 'Blond_Hair')
  assert [os.path.basename(p) for p in train._paths] == ['000001.jpg', '000002.jpg']  # pylint: disable=protected-access
  assert list(train.labels()) == [0, 1]  # the first selected attribute that is on
  np.testing.assert_array_equal(test.attributes, [[1, 1]])  # 000004: both hair colours
  config.data.attributes = ('Black_Hair', 'Bald')
  with pytest.raises(sources.DataError, match=r"list_attr_celeba.txt:2: .*\['Bald'\]"):
    pipeline.make_source(config.data, 'train')


def _kdef(root):
  files = []
  for person in ('F01', 'F02', 'M01', 'M02', 'M03'):
    for code in ('AN', 'HA'):
      for angle in ('S', 'HL'):
        files.append(f'A{person}/A{person}{code}{angle}.JPG')
  for k, f in enumerate(files):
    _png(os.path.join(root, f), COLOURS['angry' if 'AN' in f else 'happy'], seed=k)
  _png(os.path.join(root, 'AF01', 'notes.jpg'), (0, 0, 0))  # does not match the pattern


def test_kdef_file_names_identity_split_and_filter(tmp_path):
  root = str(tmp_path / 'KDEF')
  _kdef(root)
  config = _config(
    source='filename',
    root=root,
    filename_pattern='kdef',
    filename_filter='angle=S',
    split='identity',
    test_fraction=0.4,
    on_error='skip',
  )
  train, test = (pipeline.make_source(config.data, s) for s in ('train', 'test'))
  assert train.class_names == ('angry', 'happy')
  assert len(train) + len(test) == 10  # 5 people x 2 expressions, straight only
  assert all(p.endswith('S.JPG') for p in train._paths + test._paths)  # pylint: disable=protected-access
  assert not set(train.identities) & set(test.identities)  # no test identity is trained on
  assert len(set(test.identities)) == 2
  assert [os.path.basename(w) for w, _ in train.problems] == ['notes.jpg']
  config.data.on_error = 'stop'
  with pytest.raises(sources.DataError, match='notes.jpg: file name does not match'):
    pipeline.make_source(config.data, 'train')


def test_rafd_file_names(tmp_path):
  root = tmp_path / 'RaFD'
  for k, (ident, expr, gaze) in enumerate(
    [
      ('01', 'angry', 'frontal'),
      ('01', 'happy', 'left'),
      ('02', 'sad', 'frontal'),
      ('03', 'happy', 'frontal'),
    ]
  ):
    _png(str(root / f'Rafd090_{ident}_Caucasian_female_{expr}_{gaze}.jpg'), COLOURS[expr], seed=k)
  items, names = sources.read_filenames(
    str(root), 'rafd', (), 'gaze=frontal', sources.Problems('stop')
  )
  assert names == ('angry', 'happy', 'sad')
  assert [(i.identity, names[i.label]) for i in items] == [
    ('01', 'angry'),
    ('02', 'sad'),
    ('03', 'happy'),
  ]
  with pytest.raises(ValueError, match='does not capture'):
    sources.read_filenames(str(root), 'rafd', (), 'camera=090', sources.Problems('stop'))


def test_tfds_data_source(tmp_path):
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  tfds = pytest.importorskip('tensorflow_datasets')

  class TinyFaces(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version('1.0.0')

    def _info(self):
      return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict(
          {
            'picture': tfds.features.Image(shape=(20, 24, 3)),
            'expression': tfds.features.ClassLabel(names=['calm', 'glad']),
          }
        ),
      )

    def _split_generators(self, dl_manager):
      del dl_manager
      return {'train': self._generate_examples(6, 0), 'test': self._generate_examples(4, 1)}

    def _generate_examples(self, n, seed):
      rng = np.random.default_rng(seed)
      for i in range(n):
        yield i, {'picture': rng.integers(0, 256, (20, 24, 3), dtype=np.uint8), 'expression': i % 2}

  TinyFaces(data_dir=str(tmp_path), file_format='array_record').download_and_prepare()
  config = _config(
    source='tfds',
    tfds_name='tiny_faces',
    tfds_data_dir=str(tmp_path),
    tfds_image_key='picture',
    tfds_label_key='expression',
  )
  train = pipeline.make_source(config.data, 'train')
  assert len(train) == 6 and train.class_names == ('calm', 'glad')
  item = train[3]
  assert item['image'].shape == (8, 8, 3) and int(item['label']) == 1
  config.data.tfds_label_key = 'label'
  with pytest.raises(KeyError, match="no feature 'label'"):
    pipeline.make_source(config.data, 'train')


def test_prepare_gives_the_same_batches_and_resumes(csv_set, tmp_path):
  config = _config(
    source='csv',
    csv=csv_set,
    split='column',
    on_error='skip',
    class_names=('angry', 'happy', 'sad'),
  )
  out = str(tmp_path / 'prepared')
  meta = prepare.prepare(config, out, shard_size=2, workers=2)
  assert meta['counts'] == {
    'train': {'angry': 1, 'happy': 1, 'sad': 1},
    'test': {'angry': 1, 'happy': 1, 'sad': 1},
  }
  assert meta['shards'] == {'train': 2, 'test': 2}
  converted = _config(source='array_record', array_record_dir=out)
  a = iter(pipeline.create_train_dataset(config, pipeline.make_source(config.data, 'train')))
  b = iter(pipeline.create_train_dataset(converted, pipeline.make_source(converted.data, 'train')))
  for _ in range(4):  # same seed: the same examples, flips and order
    x, y = next(a), next(b)
    assert sorted(x) == sorted(y)
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  # Interrupted: a shard and meta.json missing. The rerun writes that shard only.
  shard = os.path.join(out, records.shard_name('train', 1, 2))
  others = {
    p: os.path.getmtime(os.path.join(out, p))
    for p in os.listdir(out)
    if p.endswith('.array_record') and p != os.path.basename(shard)
  }
  os.remove(shard)
  os.remove(shard + '.json')
  os.remove(os.path.join(out, records.META_FILE))
  with pytest.raises(FileNotFoundError, match='holds no meta.json'):
    pipeline.make_source(converted.data, 'train')
  assert prepare.prepare(config, out, shard_size=2, workers=1)['counts'] == meta['counts']
  assert os.path.exists(shard)
  assert all(os.path.getmtime(os.path.join(out, p)) == t for p, t in others.items())


def test_inspect_reports_counts_sizes_unreadable_duplicates_and_left_out(csv_set, tmp_path):
  img = os.path.join(os.path.dirname(csv_set), 'img')
  with open(os.path.join(img, '3.png'), 'rb') as f:
    data = f.read()
  with open(os.path.join(img, '4.png'), 'wb') as f:  # 4.png: a copy of 3.png (both test)
    f.write(data)
  with open(os.path.join(img, '5.png'), 'wb') as f:  # 5.png: truncated
    f.write(data[:40])
  config = _config(
    source='csv',
    csv=csv_set,
    split='column',
    on_error='skip',
    class_names=('angry', 'happy', 'sad'),
  )
  out = str(tmp_path / 'inspect')
  report = inspect_lib.inspect(config, out, per_class=2)
  test = report['test']
  assert test['images'] == 3 and test['per_class'] == {'angry': 1, 'happy': 1, 'sad': 1}
  assert [os.path.basename(u['file']) for u in test['unreadable']] == ['5.png']
  assert report['train']['sizes'] == {'12x10': 3}
  assert len(report['train']['left_out']) == 4 and report['train']['left_out'][0]['where'].endswith(
    'labels.csv:8'
  )
  assert [[os.path.basename(p) for p in d] for d in test['duplicates']] == [['3.png', '4.png']]
  assert report['train']['duplicates'] == []
  with open(os.path.join(out, 'report.json')) as f:
    assert json.load(f)['test']['unreadable'][0]['reason']
  sheet = np.asarray(Image.open(os.path.join(out, 'contact_sheet_train.png')))
  assert sheet.shape == (3 * 10 + 2, 2 * 10 + 2, 3)
  assert 'unreadable: 1' in inspect_lib.summary(report)
