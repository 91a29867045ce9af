"""The seeds benchmark: both ways measured, its section of the doc replaced, not appended."""

from configs import stargan as stargan_config
from jaxpr_gan.tools import bench_seeds


def test_both_ways_are_timed_and_tabled():
  figures = bench_seeds.measure(stargan_config.get_config('tiny'), num_seeds=2, iterations=2)
  assert figures['sequential'] > 0 and figures['vmap'] > 0
  assert figures['sequential_compile_s'] > 0 and figures['vmap_compile_s'] > 0
  row = bench_seeds.table([('configs/stargan.py:tiny', 2, figures)]).splitlines()[-1]
  assert row.startswith('| `configs/stargan.py:tiny` | 2 | ')
  assert f'{figures["sequential"] / figures["vmap"]:.2f} x' in row


def test_the_section_is_replaced_in_place(tmp_path):
  doc = tmp_path / 'b.md'
  doc.write_text('# B\n\n## Other\n\ntext\n\n## Table\n\nrows\n')
  bench_seeds.write_section(str(doc), 'first')
  bench_seeds.write_section(str(doc), 'second')
  text = doc.read_text()
  assert text.count(bench_seeds.SECTION) == 1 and 'first' not in text
  assert text.index('## Other') < text.index('second') < text.index('## Table')
  assert text.endswith('## Table\n\nrows\n')
