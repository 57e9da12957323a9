"""The library catalogues: the main library's INNOPAC WebPAC, the Zhuhai campus ILAS, covers."""
