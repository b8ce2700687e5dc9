"""Default yaml files of recbole-llmemf: model/, dataset/ and protocol/."""
