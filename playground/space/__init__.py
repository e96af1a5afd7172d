"""The playground as a Hugging Face Space: the files a Space needs (`python -m playground space OUT`) and,
once running there, the models its build preloaded (`preloaded.adopt`)."""
