"""The cross-domain dataset format, its reader, and the leakage and sanity checks run on it.

A dataset folder ``<data_path>/<name>/`` written by ``llmemf-data amazon`` or ``llmemf-data c2dsr``
(the "split" layout, ``benchmark_filename`` in its yaml):

- ``<name>.item``: ``item_id:token  domain:token  title:token_seq`` (+ optional ``description``,
  ``image_url``); the item token is the Amazon ASIN, the domain token the domain's name;
- ``<name>.inter``: every interaction, ``user_id:token  item_id:token  timestamp:float``;
- ``<name>.{train,valid,test}.inter``: RecBole benchmark files, one prediction case per row,
  ``user_id:token  item_id_list:token_seq  item_id:token  timestamp:float`` (the history before the
  target in time order, at most ``MAX_ITEM_LIST_LENGTH`` items, then the target and its time);
- ``<name>.yaml`` and ``stats.md`` / ``stats.json``.

The "plain" layout, which ``llmemf-data synthetic`` writes, has no split files: RecBole splits
``<name>.inter`` itself, each user's last interaction in time being the test case. Field names,
separators and the layout come from the dataset's yaml, in RecBole's config keys (``Layout``).

``check_data`` runs the checks on a dataset in memory (both tools call it before writing anything);
``llmemf-data check <folder>`` reads a folder of either layout, runs the same checks on it and
checks its feature files. ``loading_report`` is what the plugin checks when RecBole loads a dataset
that names a ``domain_field`` (``recbole_llmemf.data.dataset.check_files_before_loading``).
"""
