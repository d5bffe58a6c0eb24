"""One LightningDataModule per modality: decode one column into one sample's tensors."""
