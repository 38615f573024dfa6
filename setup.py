"""Packaging for clip_repro: metadata comes from settings.ini (nbdev 2.x convention)."""
from configparser import ConfigParser
from pathlib import Path

import setuptools

here = Path(__file__).parent
cfg = ConfigParser(delimiters=['='])
cfg.read(here / 'settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']
reqs = [l.strip() for l in (here / 'requirements.txt').read_text().splitlines()
        if l.strip() and not l.startswith(('#', '-'))]

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    author=cfg['author'],
    license='Apache-2.0',
    python_requires='>=' + cfg['min_python'],
    packages=setuptools.find_packages(include=['clip_repro', 'clip_repro.*']),
    include_package_data=True,
    package_data={'clip_repro': ['assets/*', 'assets/*/*']},
    install_requires=reqs,
    extras_require={'test': ['open_clip_torch==3.3.0', 'pytest==9.2.0']},
    entry_points={'console_scripts': cfg['console_scripts'].split(),
                  'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    zip_safe=False,
)
