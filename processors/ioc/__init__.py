"""The IoC stage: indicators and encoded payloads found in event text.

* :mod:`processors.ioc.extract`: the indicator extractor (linear-time candidate scan in Rust, ``scanner-rs/``,
  validation in Python);
* :mod:`processors.ioc.unpack`: base64, compressed and archived payloads, with hard limits;
* :mod:`processors.ioc.observables`: the stream stage that annotates an ECS document with both;
* :mod:`processors.ioc.tld`: top-level-domain checks against the Public Suffix List.

msticpy's names for the same engines are the facades :mod:`processors.iocextract` and
:mod:`processors.base64unpack`; nothing here imports them.
"""

__all__: list[str] = []
